"""hookforge-bert end to end: single- and multi-label training, LoRA save/reload/merge, predict,
length-grouped batches, bad input, and the CI-sized stage-1 search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import hookforge
from hookforge.run import Run

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "examples" / "data"


def test_single_label_learns_and_predicts_through_the_cli(text_config, hookforge_cli, hookforge_tmp):
    Path("c.yaml").write_text(yaml.safe_dump(text_config()))
    done = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "run")
    assert done.returncode == 0, done.stderr
    evaluation = json.loads((hookforge_tmp / "run" / "evaluation.json").read_text())
    assert evaluation["test"]["accuracy"] > 0.6  # three balanced classes: chance is 0.33
    assert {"f1_macro", "f1_micro", "auroc_macro", "f1_class_refutes", "confusion_matrix"} <= \
        set(evaluation["test"])
    labels = json.loads((hookforge_tmp / "run" / "labels.json").read_text())
    assert labels["labels"] == {"neutral": 0, "refutes": 1, "supports": 2}
    pd.DataFrame({"text": ["the data clearly confirm the claim", "lunch was served at noon"]}).to_csv(
        "new.csv", index=False)
    done = hookforge_cli("predict", "run", "new.csv", "-o", "preds.csv")
    assert done.returncode == 0, done.stderr
    preds = pd.read_csv("preds.csv")
    assert list(preds.columns) == ["prediction", "prob_neutral", "prob_refutes", "prob_supports"]
    np.testing.assert_allclose(preds.filter(like="prob_").sum(axis=1), 1.0, rtol=1e-5)


def test_multilabel_reports_per_label_f1(text_config):
    config = text_config(data={"path": str(DATA / "criteria.csv"),
                               "label_columns": ["sleep", "appetite", "mood", "energy"],
                               "split": {"val": 0.2, "test": 0.2, "stratify": False}},
                         model={"gradient_checkpointing": True},
                         loop={"epochs": 6, "monitor": "val/f1_micro"})
    result = hookforge.train(config)
    test = result.evaluation["test"]
    assert {"f1_macro", "f1_micro", "auroc_macro", "hamming_loss", "f1_class_sleep",
            "exact_match", "partial_match", "jaccard_samples"} <= set(test)
    assert test["auroc_macro"] > 0.7
    assert test["partial_match"] >= test["exact_match"] == test["accuracy"]
    per_label = test["confusion_matrix_per_label"]
    assert set(per_label) == {"sleep", "appetite", "mood", "energy"}
    assert sum(map(sum, per_label["sleep"])) == test["n_samples"]
    assert (result.run_dir / "figures" / "confusion_matrix_test.png").is_file()
    run = Run.open(result.run_dir)
    predictions = run.load_model().predict(np.array(["insomnia again and tired all the time"],
                                                    dtype=object))
    assert predictions.y_pred.shape == (1, 4) and predictions.task == "multilabel"


def test_lora_on_minilm_saves_the_adapter_only_and_reloads_identically(text_config, hookforge_tmp):
    config = text_config(model={"pretrained": "minilm", "config": None, "export_merged": True,
                                "lora": {"enabled": True, "r": 4, "alpha": 8}},
                         data={"max_length": 24}, loop={"epochs": 1, "batch_size": 32})
    result = hookforge.train(config)
    best = result.run_dir / "checkpoints" / "best"
    assert (best / "adapter.safetensors").is_file() and not (best / "model.safetensors").exists()
    assert (best / "adapter.safetensors").stat().st_size < 2_000_000  # not the 90 MB base
    metrics = pd.read_csv(result.run_dir / "metrics.csv")
    trainable = metrics[metrics.name == "trainable_parameters"].value.iloc[0]
    total = metrics[metrics.name == "total_parameters"].value.iloc[0]
    assert 0 < trainable < 0.05 * total
    texts = np.array(["the data contradict the claim", "a new chair arrived for the lab"], dtype=object)
    first = Run.open(result.run_dir).load_model()
    second = Run.open(result.run_dir).load_model()
    np.testing.assert_array_equal(first.predict(texts).scores, second.predict(texts).scores)
    # the merged export is a plain transformers model giving the same outputs
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    merged = AutoModelForSequenceClassification.from_pretrained(best / "merged", local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(best / "merged", local_files_only=True)
    with torch.no_grad():
        logits = merged.eval()(**tokenizer(list(texts), padding=True, truncation=True,
                                           max_length=24, return_tensors="pt")).logits
    np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), first.predict(texts).scores,
                               atol=1e-5)


def test_length_grouped_batches_cover_every_text_and_keep_prediction_order(text_config):
    run = Run.from_config(text_config(data={"group_by_length": True}, loop={"epochs": 1}))
    result = run.fit()
    model = Run.open(result.run_dir).load_model()
    split = run.dataset.split("train")
    plan = model.batch_plan(split, 16, seed=1, epoch=0, shuffle=True)
    again = model.batch_plan(split, 16, seed=1, epoch=0, shuffle=True)
    assert all((a == b).all() for a, b in zip(plan, again, strict=True))  # seeded: resumable
    assert sorted(np.concatenate(plan).tolist()) == list(range(len(split)))
    lengths = model._encoded(split)["lengths"]
    padded = sum(len(b) * lengths[b].max() for b in plan)
    ungrouped = [np.arange(len(split))[i:i + 16] for i in range(0, len(split), 16)]
    assert padded < sum(len(b) * lengths[b].max() for b in ungrouped)
    grouped = model.predict(split.X).scores
    model.info.extra["group_by_length"] = False
    np.testing.assert_allclose(model.predict(split.X).scores, grouped, atol=1e-5)


@pytest.mark.parametrize("case", ["empty_text", "unseen_label", "not_a_model", "too_long", "bad_lora"])
def test_bad_text_input_is_one_line_exit_2(case, text_config, hookforge_cli, hookforge_tmp):
    frame = pd.read_csv(DATA / "evidence.csv")
    config = text_config(loop={"epochs": 1})
    expected = {}
    if case == "empty_text":
        frame.loc[5, "text"] = "   "
        frame.to_csv("texts.csv", index=False)
        config["data"]["path"] = "texts.csv"
        expected = ["empty or missing text", "row 6", "on_empty=drop"]
    elif case == "unseen_label":
        frame.head(20).assign(label="maybe").to_csv("test.csv", index=False)
        config["data"]["test_path"] = "test.csv"
        expected = ["label 'maybe' does not occur in the training data"]
    elif case == "not_a_model":
        config["model"].update(pretrained=str(hookforge_tmp), config=None)
        expected = ["is not a model directory"]
    elif case == "too_long":
        config["data"]["max_length"] = 1000
        expected = ["data.max_length=1000", "position limit (128 tokens)"]
    else:
        config["model"]["lora"] = {"enabled": True, "target_modules": ["q_proj"]}
        expected = ["'q_proj' is not a Linear layer", "query", "value"]
    Path("c.yaml").write_text(yaml.safe_dump(config))
    done = hookforge_cli("train", "-c", "c.yaml")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr
    if case == "empty_text":  # the other policy drops the row
        done = hookforge_cli("train", "-c", "c.yaml", "data.on_empty=drop", "loop.epochs=1")
        assert done.returncode == 0, done.stderr


def test_stage_one_search_at_ci_size(hookforge_cli, hookforge_tmp):
    plan = yaml.safe_load((ROOT / "configs" / "bert" / "hpo_stage1_ci.yaml").read_text())
    plan["data"]["path"] = str(DATA / "evidence.csv")
    plan["run"]["output_dir"] = str(hookforge_tmp / "outputs")
    plan["searcher"]["n_trials"] = 3
    Path("plan.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    done = hookforge_cli("search", "-c", "plan.yaml")
    assert done.returncode == 0, done.stderr
    study = hookforge_tmp / "outputs" / "hpo" / "bert-evidence-hpo-ci" / "search"
    trials = json.loads((study / "trials.json").read_text())
    assert len(trials) == 3 and all(t["state"] in ("complete", "pruned") for t in trials)
    for trial in trials:
        if trial["params"].get("model.lora.enabled") is False:
            assert "model.lora.r" not in trial["params"]  # conditional parameter
    assert yaml.safe_load((study / "best_config.yaml").read_text())["model"]["name"] == "bert"


def test_tune_from_python(hookforge_tmp):
    plan = yaml.safe_load((ROOT / "configs" / "bert" / "hpo_stage1_ci.yaml").read_text())
    plan["data"]["path"] = str(DATA / "evidence.csv")
    plan["run"]["output_dir"] = str(hookforge_tmp / "outputs")
    result = hookforge.tune(plan, ["searcher.n_trials=2", "loop.epochs=1"])
    assert [t.state for t in result.trials] == ["complete", "complete"]
    assert result.best and "val/f1_macro" in result.best[0].metrics


def test_a_classifier_directory_with_another_label_count_gets_a_new_head(text_config, caplog):
    three = hookforge.train(text_config(model={"export_merged": True}, loop={"epochs": 1}))
    merged = three.run_dir / "checkpoints" / "best" / "merged"
    config = text_config(data={"path": str(DATA / "criteria.csv"),
                               "label_columns": ["sleep", "appetite", "mood", "energy"],
                               "split": {"val": 0.2, "test": 0.2, "stratify": False}},
                         model={"pretrained": str(merged), "config": None}, loop={"epochs": 1})
    with caplog.at_level("WARNING", logger="hookforge"):
        result = hookforge.train(config)
    assert result.status == "finished"
    assert any("3 labels and the data has 4" in r.message for r in caplog.records)


def test_exclusive_options_and_a_resume_that_logs_the_parameter_counts_once(text_config,
                                                                            hookforge_cli,
                                                                            hookforge_tmp):
    config = text_config(loop={"epochs": 1})
    Path("c.yaml").write_text(yaml.safe_dump(config))
    both = hookforge_cli("train", "-c", "c.yaml", f"model.pretrained={hookforge_tmp}")
    assert both.returncode == 2 and "exclude each other" in both.stderr
    done = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "run")
    assert done.returncode == 0, done.stderr
    from hookforge.record import RunRecord

    record = RunRecord.open(hookforge_tmp / "run")
    record.update_info(status="interrupted")  # as a run killed during its final evaluation
    resumed = hookforge_cli("train", "--resume", "run")
    assert resumed.returncode == 0, resumed.stderr
    rows = [r for r in record.read_metrics() if r["name"] == "trainable_parameters"]
    assert len(rows) == 1
    evaluation_rows = [r for r in record.read_metrics() if r["split"] == "test"]
    assert len(evaluation_rows) == len({r["name"] for r in evaluation_rows})  # recorded once
