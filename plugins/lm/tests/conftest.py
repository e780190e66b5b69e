from __future__ import annotations

import pytest

LENGTH_REWARD = '''
import numpy as np
from hookforge.components import ComponentConfig


class LengthReward:
    """Longer completions score more: a reward that varies from the first rollout."""

    class Config(ComponentConfig):
        pass

    def __init__(self, config=None):
        pass

    def __call__(self, inputs, completions):
        return np.array([min(len(c), 8) / 8 for c in completions])
'''

TINY = {"arch": "llama", "hidden_size": 32, "layers": 2, "heads": 2, "intermediate": 64}


@pytest.fixture
def lm_config(tiny_config):
    """A causal_lm config that trains in seconds: a tiny Llama on one-digit sums."""
    def make(data=None, model=None, loop=None, **sections):
        tasks = {"name": "tasks", "families": [{"name": "arith", "max_digits": 1}],
                 "n_train": 192, "n_val": 32, "n_test": 32, "max_length": 32}
        data = data or {}
        return tiny_config(
            run={"log_every_n_steps": 5, "system_metrics": False},
            data=data if data.get("name", "tasks") != "tasks" else {**tasks, **data},
            model={"name": "causal_lm", "config": TINY,
                   "tokenizer": {"train": {"kind": "bytelevel", "vocab_size": 300,
                                           "split_digits": True}},
                   "generation": {"max_new_tokens": 4}, **(model or {})},
            loop={"name": "supervised", "epochs": 2, "batch_size": 16, "device": "cpu",
                  "optimizer": {"name": "adamw", "lr": 0.005},
                  "early_stopping": {"metric": None}, **(loop or {})},
            **sections)
    return make


@pytest.fixture
def tiny_model_dir(tmp_path):
    """A local 'pretrained' model directory: a tiny random Llama, its tokenizer (with a chat
    template) and weights, as save_pretrained writes them."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from hookforge_torch.tokens import TokenizerTraining, train_tokenizer

    texts = [f"{a}+{b}={a + b}" for a in range(10) for b in range(10)] * 3
    tokenizer = train_tokenizer([*texts, "user assistant: <|im_start|><|im_end|>"],
                                TokenizerTraining(kind="bytelevel", vocab_size=300, split_digits=True))
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n"
                               "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    directory = tmp_path / "tiny-llama"
    AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture
def length_reward(hookforge_register, tmp_path):
    import importlib.util

    path = tmp_path / "lengthreward.py"
    path.write_text(LENGTH_REWARD)
    spec = importlib.util.spec_from_file_location("lengthreward", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    hookforge_register("reward", "length", module.LengthReward)
    return tmp_path


TIMING = {"rollout_s", "samples_per_s", "epoch_time_s", "peak_memory_mb"}


@pytest.fixture
def killed_and_straight(length_reward, hookforge_cli, hookforge_installed, hookforge_tmp):
    """Train a config straight and killed (SIGKILL after rollout 2) then resumed, through the
    CLI; returns (the two runs' records without timings, a reader of a file of both 'last')."""
    from pathlib import Path

    import yaml

    from hookforge.record import RunRecord

    torch_tests = Path(__file__).resolve().parents[2] / "torch" / "tests"

    def run(config):
        env = hookforge_installed({"hookforge.plugins": {"killer": "killer:Killer"},
                                   "hookforge.rewards": {"length": "lengthreward:LengthReward"}},
                                  [torch_tests, length_reward])
        Path("c.yaml").write_text(yaml.safe_dump(config))
        straight = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "straight", env=env)
        assert straight.returncode == 0, straight.stderr
        killed = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "killed",
                               env={**env, "HOOKFORGE_TEST_KILL": "2:SIGKILL"})
        assert killed.returncode == -9
        resumed = hookforge_cli("train", "--resume", "killed", env=env)
        assert resumed.returncode == 0, resumed.stderr

        def record(name):
            return [(r["step"], r["split"], r["name"], r["value"])
                    for r in RunRecord.open(hookforge_tmp / name).read_metrics()
                    if r["name"] not in TIMING and r["split"] != "system"]

        def files(name):
            return [(hookforge_tmp / n / "checkpoints" / "last" / name).read_bytes()
                    for n in ("killed", "straight")]

        return (record("killed"), record("straight")), files
    return run
