"""hookforge-lm on tiny models (CPU, seconds): SFT with the prompt masked, generation through the
CLI, per-family evaluation and the base-vs-SFT comparison, packing that changes no loss, exact
resume after SIGKILL, LoRA on a local model directory with a chat template and a merged export,
a curriculum, verifiers that crash, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import hookforge
from hookforge.record import RunRecord

ROOT = Path(__file__).resolve().parents[3]
TORCH_TESTS = ROOT / "plugins" / "torch" / "tests"  # the Killer hook-only test plugin
TIMING = {"samples_per_s", "epoch_time_s", "peak_memory_mb"}


def metrics(run_dir, split, name):
    return [r["value"] for r in RunRecord.open(run_dir).read_metrics()
            if r["split"] == split and r["name"] == name]


def test_sft_generates_through_the_cli_and_compare_shows_each_family(lm_config, hookforge_cli,
                                                                      hookforge_tmp):
    config = lm_config(data={"families": [{"name": "arith", "max_digits": 1, "weight": 3},
                                          {"name": "sat", "max_vars": 3}]},
                       loop={"epochs": 3})
    Path("c.yaml").write_text(yaml.safe_dump(config))
    sft = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "sft")
    assert sft.returncode == 0, sft.stderr
    base = hookforge.train("c.yaml", ["loop.name=simple"], run_dir="base")  # scored untrained
    assert base.status == "finished"

    # validation loss and perplexity of the completions every epoch
    assert len(metrics("sft", "val", "loss")) == 3 and len(metrics("sft", "val", "perplexity")) == 3
    assert metrics("sft", "val", "loss")[-1] < metrics("sft", "val", "loss")[0]
    test = json.loads(Path("sft/evaluation.json").read_text())["test"]
    for family in ("arith", "sat"):
        for name in ("accuracy", "mean_score", "std_score", "median_score", "success_rate",
                     "success_rate_low", "success_rate_high", "n_samples", "verifier_errors"):
            assert f"{family}/{name}" in test
        assert test[f"{family}/success_rate_low"] <= test[f"{family}/success_rate"] \
            <= test[f"{family}/success_rate_high"]
    assert test["arith/n_samples"] + test["sat/n_samples"] == 32
    weighted = (test["arith/success_rate"] * test["arith/n_samples"]
                + test["sat/success_rate"] * test["sat/n_samples"]) / 32
    assert test["success_rate"] == pytest.approx(weighted)
    samples = [json.loads(line) for line in Path("sft/generations/test.jsonl").read_text().splitlines()]
    assert len(samples) == 32 and {"family", "prompt", "completion", "score"} <= set(samples[0])
    # the problems are the run's own: written once, the same for the base run of the config
    assert Path("sft/data/test.jsonl").read_text() == Path("base/data/test.jsonl").read_text()

    Path("prompts.jsonl").write_text('{"prompt": "3+4="}\n{"prompt": "1+1="}\n')
    predicted = hookforge_cli("predict", "sft", "prompts.jsonl", "-o", "out.jsonl")
    assert predicted.returncode == 0, predicted.stderr
    out = pd.read_json("out.jsonl", lines=True, dtype=False)
    assert list(out["prompt"]) == ["3+4=", "1+1="] and out["completion"].map(type).eq(str).all()

    from hookforge.compare import compare

    result = compare(["sft", "base"]).to_dict()
    assert [m["key"] for m in result["metrics"]] == ["test/arith/success_rate",
                                                     "test/sat/success_rate"]
    rows = {Path(r["run_dir"]).name: r for r in result["runs"]}
    low, high = rows["sft"]["intervals"]["test/arith/success_rate"]
    assert low <= rows["sft"]["values"]["test/arith/success_rate"] <= high
    # a run better on one family and no worse on the other dominates
    sft_values, base_values = rows["sft"]["values"], rows["base"]["values"]
    if all(s >= b for s, b in zip(sft_values.values(), base_values.values(), strict=True)) and \
            sft_values != base_values:
        assert rows["sft"]["pareto"] and not rows["base"]["pareto"]
    table = hookforge_cli("compare", "sft", "base")
    assert "arith/success_rate" in table.stdout and "80% intervals" in table.stdout


def test_the_prompt_is_masked_and_packing_changes_no_loss(lm_config):
    import torch

    result = hookforge.train(lm_config(data={"families": [{"name": "sat", "max_vars": 4},
                                                          {"name": "arith"}]},
                                       loop={"epochs": 1}))
    run = hookforge.Run.open(result.run_dir)
    model = run.load_model()
    split = run.load_data().split("train")
    indices = np.arange(12)
    batch = model.collate(split, indices, cache=False)
    encoded = model._encoded(split, cache=False)
    for k in range(12):
        prompt = int(encoded["prompt"][k])
        assert (batch["y"][k, :prompt] == -100).all()  # prompt tokens are no targets
        assert (batch["y"][k, prompt:len(encoded["ids"][k])] != -100).all()
    completion = model.tokenizer.decode(batch["y"][0][batch["y"][0] != -100],
                                        skip_special_tokens=True)  # and EOS
    assert completion == split.y[0]

    plain = model.forward(batch)
    model.config = model.config.model_copy(update={"packing": True})
    packed_batch = model.collate(split, indices, cache=False)
    assert packed_batch["input_ids"].shape[0] < 12  # fewer rows
    packed = model.forward(packed_batch)
    torch.testing.assert_close(packed, plain, rtol=1e-4, atol=1e-4)


def test_a_killed_run_resumes_bit_for_bit(lm_config, hookforge_cli, hookforge_tmp,
                                          hookforge_installed):
    killer = hookforge_installed({"hookforge.plugins": {"killer": "killer:Killer"}}, [TORCH_TESTS])
    config = lm_config(data={"group_by_length": True, "curriculum": {"enabled": True, "start": 0.0,
                                                                     "epochs": 2},
                             "families": [{"name": "arith", "max_digits": 2}]},
                       model={"packing": True},
                       loop={"checkpoint_every_n_steps": 4, "keep_last_n": 2,
                             "scheduler": {"name": "cosine", "warmup_steps": 3,
                                           "min_lr_ratio": 0.1}})
    Path("c.yaml").write_text(yaml.safe_dump(config))
    straight = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "straight")
    assert straight.returncode == 0, straight.stderr
    killed = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "killed",
                           env={**killer, "HOOKFORGE_TEST_KILL": "17:SIGKILL"})  # mid epoch 2
    assert killed.returncode == -9
    resumed = hookforge_cli("train", "--resume", "killed", env=killer)
    assert resumed.returncode == 0, resumed.stderr

    def record(name):
        rows = RunRecord.open(hookforge_tmp / name).read_metrics()
        return [(r["step"], r["split"], r["name"], r["value"]) for r in rows
                if r["name"] not in TIMING and r["split"] != "system"]

    assert record("killed") == record("straight")
    weights = [(hookforge_tmp / n / "checkpoints" / "last" / "model.safetensors").read_bytes()
               for n in ("killed", "straight")]
    assert weights[0] == weights[1]
    steps = sorted(p.name for p in (hookforge_tmp / "straight" / "checkpoints").glob("step-*"))
    assert steps == ["step-20", "step-24"]  # save every 4 steps, keep the last 2


def test_lora_on_a_local_model_with_its_chat_template_and_a_merged_export(
        lm_config, tiny_model_dir, hookforge_tmp):
    import torch
    from transformers import AutoModelForCausalLM

    rows = [{"messages": [{"role": "user", "content": f"{a}+{b}="},
                          {"role": "assistant", "content": str(a + b)}]}
            for a in range(10) for b in range(10)]
    pd.DataFrame(rows).to_json("chat.jsonl", orient="records", lines=True)
    config = lm_config(data={"name": "jsonl", "path": "chat.jsonl", "max_length": 40,
                             "split": {"val": 0.2, "test": 0.2}},
                       model={"config": None, "tokenizer": None, "pretrained": str(tiny_model_dir),
                              "lora": {"enabled": True, "r": 4, "alpha": 8,
                                       "target_modules": ["q_proj", "v_proj", "down_proj"]},
                              "gradient_checkpointing": True, "export_merged": True},
                       loop={"epochs": 1, "amp": {"enabled": True, "dtype": "bfloat16"}})
    result = hookforge.train(config)
    assert result.status == "finished"
    best = Path(result.run_dir) / "checkpoints" / "best"
    assert (best / "adapter.safetensors").is_file() and not (best / "model.safetensors").exists()
    info = json.loads((Path(result.run_dir) / "run.json").read_text())["lm"]
    assert 0 < info["trainable"] < info["parameters"] / 4
    assert "user/exact_match" not in result.evaluation["test"]  # user data: exact match overall
    assert "user/success_rate" in result.evaluation["test"]

    model = hookforge.Run.open(result.run_dir).load_model()
    formatter = model.formatter()
    assert formatter.prompt_text("2+2=") == "<user>2+2=\n<assistant>"  # the model's chat template
    merged = AutoModelForCausalLM.from_pretrained(best / "merged", local_files_only=True).eval()
    ids = torch.tensor([[1, 5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, model.net(input_ids=ids).logits,
                                   rtol=1e-4, atol=1e-4)
    # the merged directory is a model directory: a new run can start from it
    again = hookforge.train(lm_config(data=config["data"], model={
        "config": None, "tokenizer": None, "pretrained": str(best / "merged")},
        loop={"epochs": 1}))
    assert again.status == "finished"


def test_sampled_generation_is_seeded(lm_config):
    result = hookforge.train(lm_config(loop={"epochs": 1}))
    model = hookforge.Run.open(result.run_dir).load_model()
    prompts = [f"{a}+{b}=" for a in range(5) for b in range(5)]

    def sample(seed):
        settings = model.config.generation.model_copy(update={
            "do_sample": True, "temperature": 3.0, "top_p": 0.95, "seed": seed,
            "max_new_tokens": 6, "batch_size": 7})
        model.config = model.config.model_copy(update={"generation": settings})
        return list(model.predict(prompts).y_pred)

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)
    greedy = list(model.predict(prompts).y_pred)
    model.config = model.config.model_copy(update={"generation": model.config.generation.model_copy(
        update={"do_sample": False, "batch_size": 25})})
    assert list(model.predict(prompts).y_pred) == list(model.predict(prompts[::-1]).y_pred)[::-1]
    assert len(greedy) == 25

    # a prompt longer than the context: cut from the left, or refused naming it
    long_prompt = "1+" * 100 + "1="
    assert len(model.predict([long_prompt]).y_pred) == 1
    model.config = model.config.model_copy(update={"too_long": "error"})
    from hookforge.errors import DataError

    with pytest.raises(DataError, match=r"prompt 2: prompt tokens are .* above the limit"):
        model.predict(["1+1=", long_prompt])


def test_a_curriculum_starts_easy_and_keeps_the_epoch_length():
    from hookforge.types import DatasetInfo, Split
    from hookforge_lm.model import CausalLM

    model = CausalLM(CausalLM.Config(config={"arch": "llama"}))
    model.info = DatasetInfo(task="generation", extra={
        "curriculum": {"enabled": True, "start": 0.2, "epochs": 3}})
    difficulty = np.linspace(0, 1, 100)
    split = Split(pd.DataFrame({"prompt": ["x"] * 100, "difficulty": difficulty}), None)
    seen = []
    for epoch in range(4):
        plan = model.batch_plan(split, 10, seed=0, epoch=epoch, shuffle=True)
        rows = np.concatenate(plan)
        assert len(rows) == 100 and len(plan) == 10
        seen.append(difficulty[rows].max())
    assert seen[0] <= 0.2 + 1e-9 and seen[1] <= 0.6 + 1e-9 and seen[2] == seen[3] == 1.0
    assert model.batch_plan(split, 10, seed=0, epoch=0, shuffle=True)[0].tolist() == \
        model.batch_plan(split, 10, seed=0, epoch=0, shuffle=True)[0].tolist()  # seeded


class Broken:
    """A family whose verifier crashes on every answer."""

    from hookforge_lm.tasks.base import TaskOptions as Config

    def __init__(self, options=None):
        self.options = options

    def generate(self, rng, difficulty):
        from hookforge_lm.tasks.base import Instance

        return Instance("ping", "pong", {}, difficulty)

    def verify(self, data, answer):
        raise RuntimeError("verifier bug")


def test_a_crashing_verifier_scores_zero_and_is_counted(lm_config, hookforge_register):
    hookforge_register("task", "broken", Broken)
    result = hookforge.train(lm_config(data={"families": [{"name": "arith"}, {"name": "broken"}]},
                                       loop={"epochs": 1}))
    test = result.evaluation["test"]
    assert result.status == "finished"
    assert test["broken/success_rate"] == 0 and test["broken/verifier_errors"] == test["broken/n_samples"]
    assert test["arith/verifier_errors"] == 0
    samples = Path(result.run_dir, "generations", "test.jsonl").read_text()
    assert "verifier bug" in samples


def _model_dir_without(tiny_model_dir, tmp_path, pattern):
    import shutil

    target = tmp_path / f"without-{pattern.strip('*.')}"
    shutil.copytree(tiny_model_dir, target)
    for path in target.glob(pattern):
        path.unlink()
    return target


@pytest.mark.parametrize("case", ["no-weights", "no-tokenizer", "target-modules", "family",
                                  "too-long", "quantization", "arch"])
def test_bad_input_is_one_line_and_exit_2(case, lm_config, hookforge_cli, tiny_model_dir,
                                          tmp_path, hookforge_tmp):
    pretrained = {"config": None, "tokenizer": None, "pretrained": str(tiny_model_dir)}
    changes, expected = {
        "no-weights": ({"model": {**pretrained, "pretrained": str(
            _model_dir_without(tiny_model_dir, tmp_path, "*.safetensors"))}}, "has no weights"),
        "no-tokenizer": ({"model": {**pretrained, "pretrained": str(
            _model_dir_without(tiny_model_dir, tmp_path, "tokenizer*"))}}, "has no tokenizer"),
        "target-modules": ({"model": {"lora": {"enabled": True, "target_modules": ["query"]}}},
                           "'query' is not a Linear layer of this model; it has: down_proj, gate_proj"),
        "family": ({"data": {"families": [{"name": "arithm"}]}}, "did you mean 'arith'"),
        "too-long": ({"data": {"families": [{"name": "sat"}], "max_length": 16},
                      "model": {"too_long": "error"}}, "data row 1: prompt and completion are"),
        "quantization": ({"model": {**pretrained, "quantization": "4bit"}}, "needs a CUDA device"),
        "arch": ({"model": {"config": {"arch": "lama"}}}, "did you mean 'llama'"),
    }[case]
    config = lm_config(**{k: v for k, v in changes.items() if k == "model"},
                       data=changes.get("data"))
    Path("c.yaml").write_text(yaml.safe_dump(config))
    done = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "bad")
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert expected in lines[0], lines[0]
