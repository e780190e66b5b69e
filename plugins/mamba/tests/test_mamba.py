"""hookforge-mamba on tiny models (CPU, seconds): classification that has to remember the start of
a document, language modelling with perplexity, exact resume after SIGKILL with the saved
tokenizer, left padding and chunked reading that change nothing, bf16 and accumulation through
the engine, and bad input."""

from __future__ import annotations

import importlib.util
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
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "state_size": 8}


def _generator():
    spec = importlib.util.spec_from_file_location("make_longdoc", ROOT / "examples/data/make_longdoc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def key_docs(hookforge_tmp):
    """Documents labelled by the key word after "open" at their start (one of the first four keys:
    'early', else 'late'); every key word also occurs later as a distractor, so the label is in
    the phrase the model read at the start, not in which words occur."""
    generator = _generator()
    rows = []
    for row in generator.make_documents(320, 40, 80, filler=60, seed=3):
        words = row["text"].split()
        key = words[words.index("open") + 1]
        rows.append({"text": row["text"], "label": "early" if key in generator.KEYS[:4] else "late"})
    path = hookforge_tmp / "keys.jsonl"
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    return path


@pytest.fixture
def mamba_config(tiny_config, key_docs):
    def make(data=None, model=None, loop=None, **sections):
        return tiny_config(
            run={"log_every_n_steps": 5, "system_metrics": False},
            data={"name": "text", "path": str(key_docs), "max_length": 96,
                  "split": {"val": 0.2, "test": 0.2}, **(data or {})},
            model={"name": "mamba", "variant": "mamba2", "config": TINY,
                   "tokenizer": {"train": {"vocab_size": 120}}, **(model or {})},
            loop={"name": "supervised", "epochs": 8, "batch_size": 16, "device": "cpu",
                  "early_stopping": {"metric": None},
                  "optimizer": {"name": "adamw", "lr": 0.01}, **(loop or {})},
            **sections)
    return make


def test_classifies_by_what_it_read_first_and_predicts_through_the_cli(mamba_config, hookforge_cli,
                                                                        hookforge_tmp, key_docs):
    Path("c.yaml").write_text(yaml.safe_dump(mamba_config()))
    done = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "r")
    assert done.returncode == 0, done.stderr
    run_dir = hookforge_tmp / "r"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["mamba"]["path"] == "torch" and info["mamba"]["variant"] == "mamba2"
    test = json.loads((run_dir / "evaluation.json").read_text())["test"]
    assert test["accuracy"] >= 0.9  # chance is 0.5
    tokenizer = run_dir / "checkpoints" / "best" / "tokenizer" / "tokenizer.json"
    assert json.loads(tokenizer.read_text())["model"]["type"] == "BPE"
    pd.read_json(key_docs, lines=True).head(6).to_json("docs.jsonl", orient="records", lines=True)
    predicted = hookforge_cli("predict", "r", "docs.jsonl", "-o", "out.csv")
    assert predicted.returncode == 0, predicted.stderr
    out = pd.read_csv("out.csv")
    assert len(out) == 6 and "prediction" in out.columns


def test_language_model_perplexity_and_a_killed_run_resumes_bit_for_bit(
        mamba_config, hookforge_cli, hookforge_tmp, hookforge_installed):
    killer = hookforge_installed({"hookforge.plugins": {"killer": "killer:Killer"}}, [TORCH_TESTS])
    config = mamba_config(data={"label_column": None, "group_by_length": True},
                          model={"tokenizer": {"train": {"vocab_size": 90}}},
                          loop={"epochs": 2, "checkpoint_every_n_steps": 4,
                                "scheduler": {"name": "cosine", "warmup_ratio": 0.1}})
    Path("c.yaml").write_text(yaml.safe_dump(config))
    straight = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "straight")
    assert straight.returncode == 0, straight.stderr
    killed = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "killed",
                           env={**killer, "HOOKFORGE_TEST_KILL": "14:SIGKILL"})  # mid epoch 2
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
    evaluation = json.loads((hookforge_tmp / "straight" / "evaluation.json").read_text())
    val = [v for s, split, name, v in record("straight") if split == "val" and name == "perplexity"]
    assert val[-1] < val[0] < 90  # it learns, from below a uniform guess over the vocabulary
    assert evaluation["test"]["perplexity"] == pytest.approx(np.exp(evaluation["test"]["nll"]))


def test_left_padding_and_chunked_reading_change_nothing(mamba_config, key_docs, hookforge_tmp):
    import torch

    from hookforge.types import Split

    result = hookforge.train(mamba_config(model={"pooling": "last", "max_chunks": 4},
                                          data={"max_length": 32}, loop={"epochs": 1}))
    model = hookforge.Run.open(result.run_dir).load_model()
    texts = pd.read_json(key_docs, lines=True)["text"].to_numpy(dtype=object)[:6]
    assert max(len(model.tokenizer(t)["input_ids"]) for t in texts) > 32  # several chunks each
    together = model.run_split(Split(texts, None), batch_size=6, cache=False)[1].scores
    alone = np.concatenate([model.run_split(Split(texts[i:i + 1], None), batch_size=1,
                                            cache=False)[1].scores for i in range(6)])
    np.testing.assert_allclose(together, alone, atol=1e-5)  # padding never reaches a state
    batch = model.collate(Split(texts, None), np.arange(6), cache=False)
    with torch.no_grad():
        chunked = model.module(**batch)
        model.module.chunk_length = None  # the whole document in one pass
        whole = model.module(**batch)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-4)


def test_mamba_v1_attention_pooling_multilabel_bf16_and_accumulation(tiny_config, hookforge_tmp):
    rows = []
    for row in _generator().make_documents(96, 30, 60, filler=40, seed=5):
        words = set(row["text"].split())
        rows.append({"text": row["text"], "amber": int("amber" in words),
                     "cobalt": int("cobalt" in words)})
    pd.DataFrame(rows).to_json("multi.jsonl", orient="records", lines=True)
    result = hookforge.train(tiny_config(
        run={"system_metrics": False},
        data={"name": "text", "path": "multi.jsonl", "label_columns": ["amber", "cobalt"],
              "max_length": 64, "truncation_side": "left"},
        model={"name": "mamba", "variant": "mamba", "config": TINY, "pooling": "attention",
               "tokenizer": {"train": {"vocab_size": 80}}},
        loop={"name": "supervised", "epochs": 2, "batch_size": 8, "device": "cpu",
              "gradient_accumulation": 2, "amp": {"enabled": True, "dtype": "bfloat16"},
              "optimizer": {"name": "adamw", "lr": 0.01}}))
    test = result.evaluation["test"]
    assert {"f1_class_amber", "f1_class_cobalt", "hamming_loss", "exact_match"} <= set(test)
    info = json.loads((Path(result.run_dir) / "run.json").read_text())
    assert info["mamba"]["variant"] == "mamba" and info["mamba"]["task"] == "classification"
    trainer = [e for e in RunRecord.open(result.run_dir).read_events() if e.get("event") == "trainer"]
    assert trainer and trainer[0]["amp"] == "bfloat16"
    loaded = hookforge.Run.open(result.run_dir).load_model()
    predictions = loaded.predict(np.array(["open amber w1 w2 close cobalt"], dtype=object))
    assert predictions.y_pred.shape == (1, 2) and predictions.task == "multilabel"


def test_a_tokenizer_directory_is_reused(mamba_config, hookforge_tmp, monkeypatch):
    # WordPiece training is not deterministic across processes (huggingface/tokenizers#1794):
    # the saved tokenizer is how a second run, a resume or predict gets the same ids
    first = hookforge.train(mamba_config(model={"tokenizer": {"train": {"kind": "wordpiece"}}},
                                         loop={"epochs": 1}))
    saved = Path(first.run_dir) / "checkpoints" / "best" / "tokenizer"
    saved_vocab = hookforge.Run.open(first.run_dir).load_model().tokenizer.get_vocab()
    second = hookforge.train(mamba_config(model={"tokenizer": str(saved)}, loop={"epochs": 1}))
    again = hookforge.Run.open(second.run_dir).load_model().tokenizer
    assert again.get_vocab() == hookforge.Run.open(first.run_dir).load_model().tokenizer.get_vocab()
    # a resumed run reads its checkpoint's tokenizer: training another one would be an error
    RunRecord.open(first.run_dir).update_info(status="interrupted")

    def no_training(*args, **kwargs):
        raise AssertionError("a resumed run trained a new tokenizer")

    monkeypatch.setattr("hookforge_mamba.model.train_tokenizer", no_training)
    hookforge.Run.resume(first.run_dir).fit()
    assert hookforge.Run.open(first.run_dir).load_model().tokenizer.get_vocab() == saved_vocab


@pytest.mark.parametrize("override, message", [
    ("model.variant=mamba3", "model.variant"),
    ("model.tokenizer=/no/such/tokenizer", "model.tokenizer: tokenizer directory /no/such/tokenizer "
                                           "does not exist"),
    ("model.tokenizer.train.vocab_size=5", "model.tokenizer.train.vocab_size=5 leaves no room beyond "
                                           "the 7 special tokens"),
    ("model.kernels=required", "the fused Mamba kernels (mamba-ssm, causal-conv1d) are not installed; "
                               "pip install 'hookforge-mamba[cuda]'"),
    ("model.config.hiden_size=8", "model.config.hiden_size: not a Mamba2Config field (did you mean "
                                  "'hidden_size'?)"),
    ("model.config.head_dim=7", "is not a multiple of head_dim=7"),
    ("model.max_chunks=4 model.variant=mamba", "model.max_chunks needs model.variant=mamba2"),
    ("data.max_length=2048 model.tokenizer=TOKENIZER", "data.max_length=2048 is above the tokenizer's "
                                                       "limit (512 tokens"),
])
def test_bad_input_is_one_line_exit_2(override, message, mamba_config, hookforge_cli, hookforge_tmp):
    tokenizer = hookforge_tmp / "tok"
    if "TOKENIZER" in override:
        from hookforge_torch.tokens import TokenizerTraining, train_tokenizer

        trained = train_tokenizer(["a b c d e f g"] * 4, TokenizerTraining(vocab_size=30))
        trained.model_max_length = 512
        trained.save_pretrained(tokenizer)
    Path("c.yaml").write_text(yaml.safe_dump(mamba_config()))
    args = override.replace("TOKENIZER", str(tokenizer)).split()
    done = hookforge_cli("train", "-c", "c.yaml", *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (hookforge_tmp / "outputs" / "runs").exists() or not any(
        (hookforge_tmp / "outputs" / "runs").iterdir())  # refused before any run directory
