"""The models of hookforge-gbm, trained through the CLI and Python on scikit-learn's bundled data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

import hookforge
from hookforge.run import Run
from hookforge.testing import PredictionRecorder

SMALL = {
    "lightgbm": {"name": "lightgbm", "n_estimators": 200, "num_leaves": 7, "feature_fraction": 0.7,
                 "bagging_fraction": 0.8, "bagging_freq": 1, "min_child_samples": 10},
    "xgboost": {"name": "xgboost", "n_estimators": 200, "max_depth": 3},
    "logistic_regression": {"name": "logistic_regression"},
    "random_forest": {"name": "random_forest", "n_estimators": 100},
}


@pytest.mark.parametrize("name", list(SMALL))
def test_model_trains_saves_and_predicts_identically(cancer, name):
    result = hookforge.train(cancer(SMALL[name], evaluators=[{"name": "classification", "beta": 0.5}]))
    assert result.status == "finished"
    # the published range for these models on breast_cancer
    assert 0.92 <= result.metric("test/accuracy") <= 1.0
    assert 0.95 <= result.metric("test/auroc_macro") <= 1.0
    assert "fbeta_macro" in result.evaluation["test"] and "log_loss" in result.evaluation["test"]
    run = Run.open(result.run_dir)
    dataset = run.load_data()
    in_memory = run.evaluate(["test"])["test"]
    assert in_memory["accuracy"] == result.metric("test/accuracy")
    # the checkpoint's files are hashed in run.json, and load without pickle
    info = json.loads((result.run_dir / "run.json").read_text())
    assert set(info["checkpoints"]["best"]["files"]) >= {"tabular.json"}
    model = run.load_model()
    loaded = model.predict(dataset.split("test").X)
    again = Run.open(result.run_dir).load_model().predict(dataset.split("test").X)
    np.testing.assert_array_equal(loaded.scores, again.scores)


@pytest.mark.parametrize("name", ["lightgbm", "logistic_regression"])
def test_each_split_is_predicted_once(cancer, name):
    """A run predicts val and test at most once each: a one-shot estimator's epoch scores and the
    evaluation share one prediction of val, and boosting leaves val to the evaluation (whose
    scores metrics.csv then holds once at the last round, not twice)."""
    recorder = PredictionRecorder()
    run = Run.from_config(cancer(SMALL[name]), plugins=[recorder])
    result = run.fit()
    sizes = {split: len(part) for split, part in run.dataset.splits.items()}
    # LightGBM trained to its last round already holds its val output: only test is predicted
    expected = [sizes["test"]] if name == "lightgbm" else [sizes["val"], sizes["test"]]
    assert sorted(recorder.sizes) == sorted(expected)
    metrics = pd.read_csv(result.run_dir / "metrics.csv")
    final = metrics[(metrics.split == "val") & (metrics.step == metrics.step.max())]
    f1 = final[final.name == "f1_macro"]
    assert len(f1) == (1 if name == "lightgbm" else 2), final  # one-shot: the epoch, the evaluation
    assert (f1.value == result.evaluation["val"]["f1_macro"]).all()


@pytest.mark.parametrize("task, data, rounds", [
    ("binary", {"dataset": "breast_cancer"}, {"n_estimators": 30}),
    ("multiclass", {"dataset": "wine"}, {"n_estimators": 30}),
    ("regression", {"dataset": "diabetes"}, {"n_estimators": 30}),
    ("stopped early", {"dataset": "breast_cancer"},
     {"n_estimators": 2000, "learning_rate": 0.3, "early_stopping_rounds": 5}),
])
def test_lightgbm_val_output_kept_from_training_equals_predicting_again(tiny_config, task, data,
                                                                        rounds):
    run = Run.from_config(tiny_config(data={"name": "sklearn", **data},
                                      model={"name": "lightgbm", "num_leaves": 7, **rounds}))
    run.fit()
    kept = run.model.fit_predictions()
    if task == "stopped early":  # cut back to its best round: nothing kept, val predicted again
        assert run.model.rounds < 2000 and kept == {}
        return
    again = run.model.predict(run.dataset.split("val").X)
    np.testing.assert_array_equal(kept["val"].y_pred, again.y_pred)
    if task != "regression":
        np.testing.assert_allclose(kept["val"].scores, again.scores, rtol=0, atol=1e-12)


def test_boosting_reports_every_round_and_stops_early(cancer):
    result = hookforge.train(cancer({**SMALL["lightgbm"], "n_estimators": 2000, "learning_rate": 0.3,
                                     "early_stopping_rounds": 10}))
    metrics = pd.read_csv(result.run_dir / "metrics.csv")
    per_round = metrics[(metrics.split == "val") & (metrics.name == "log_loss")]
    # one row per boosting round, then the final model's scores
    assert len(per_round) > 20 and len(per_round) < 2000
    assert result.fit.best_epoch < result.fit.epochs - 1  # stopped after the best round
    text = (result.run_dir / "checkpoints" / "best" / "model.lgb.txt").read_text()
    assert text.count("Tree=") == result.fit.best_epoch + 1


def test_a_hook_can_stop_boosting_like_a_pruner(cancer, hookforge_register):
    from hookforge import hookimpl

    class StopAtFive:
        @hookimpl
        def hookforge_after_epoch(self, run, result):
            assert "val/accuracy" in result.metrics and "val/log_loss" in result.metrics
            if result.epoch == 4:
                run.request_stop("pruned")

    for name in ("lightgbm", "xgboost"):
        run = Run.from_config(cancer(SMALL[name]), plugins=[StopAtFive()])
        result = run.fit()
        assert result.fit.stop_reason == "pruned" and result.fit.epochs == 5
        assert json.loads((result.run_dir / "run.json").read_text())["stop_reason"] == "pruned"


@pytest.mark.parametrize("name", ["lightgbm", "xgboost", "random_forest"])
def test_regression_and_multiclass(tiny_config, name):
    model = {"name": name}
    reg = hookforge.train(tiny_config(data={"name": "sklearn", "dataset": "diabetes"}, model=model))
    # better than predicting the mean (a 67-row test split of diabetes is noisy)
    assert reg.metric("test/r2") > 0.0 and reg.metric("test/rmse") > 0
    wine = hookforge.train(tiny_config(data={"name": "sklearn", "dataset": "wine"}, model=model))
    assert wine.metric("test/accuracy") >= 0.85
    assert len(np.asarray(wine.evaluation["test"]["confusion_matrix"])) == 3


def test_class_weights(cancer):
    balanced = hookforge.train(cancer({**SMALL["logistic_regression"], "class_weight": "balanced"}))
    assert balanced.status == "finished"
    skewed = hookforge.train(cancer({**SMALL["lightgbm"], "class_weight": {"0": 50.0, "1": 1.0}}))
    # weighting class 0 heavily trades recall of class 1 for recall of class 0
    matrix = np.asarray(skewed.evaluation["test"]["confusion_matrix"])
    assert matrix[0, 1] <= matrix[1, 0] + 2


def test_categorical_pipeline_handles_unseen_categories(hookforge_cli, mixed_csv, hookforge_tmp):
    args = ["train", "--data", "csv", f"data.path={mixed_csv}", "data.target=label",
            "data.categorical=auto", "data.on_nan=keep", "--model", "logistic_regression",
            "--run-dir", "run"]
    done = hookforge_cli(*args)
    assert done.returncode == 0, done.stderr
    meta = json.loads((hookforge_tmp / "run" / "checkpoints" / "best" / "tabular.json").read_text())
    assert meta["categorical"] == ["color"] and meta["pipeline"] is True
    assert "color_red" in meta["features_out"]
    evaluation = json.loads((hookforge_tmp / "run" / "evaluation.json").read_text())
    assert evaluation["test"]["accuracy"] > 0.8
    frame = pd.read_csv(mixed_csv).drop(columns="label").head(5)
    frame.loc[0, "color"] = "purple"  # never seen in training
    frame.to_csv(hookforge_tmp / "new.csv", index=False)
    done = hookforge_cli("predict", "run", "new.csv", "-o", "preds.csv")
    assert done.returncode == 0, done.stderr
    preds = pd.read_csv(hookforge_tmp / "preds.csv")
    assert list(preds.columns) == ["prediction", "prob_no", "prob_yes"] and len(preds) == 5
    assert set(preds.prediction) <= {"yes", "no"}
    # a training column missing from the input is named
    frame.drop(columns="x2").to_csv(hookforge_tmp / "short.csv", index=False)
    done = hookforge_cli("predict", "run", "short.csv", "-o", "preds.csv")
    assert done.returncode == 2 and "'x2'" in done.stderr and "Traceback" not in done.stderr


def test_bad_tabular_input_is_one_line_exit_2(hookforge_cli, mixed_csv, hookforge_tmp):
    frame = pd.read_csv(mixed_csv)
    cases = {}
    with_string = frame.x1.astype(object).where(frame.index != 7, "oops")
    frame.assign(x1=with_string).to_csv("strings.csv", index=False)
    cases["strings.csv"] = ["column 'x1' is not numeric", "'oops'"]
    frame.assign(label="yes").to_csv("one_class.csv", index=False)
    cases["one_class.csv"] = ["single class"]
    frame.drop(columns="label").to_csv("no_target.csv", index=False)
    cases["no_target.csv"] = ["target column 'label' not found"]
    frame.assign(x1=np.nan).to_csv("all_nan.csv", index=False)
    cases["all_nan.csv"] = ["column 'x1' has no values"]
    for file, expected in cases.items():
        done = hookforge_cli("train", "--data", "csv", f"data.path={file}", "data.target=label",
                             "data.categorical=[color]", "data.on_nan=keep", "--model", "lightgbm")
        assert done.returncode == 2, (file, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
        for text in expected:
            assert text in done.stderr, (file, done.stderr)


def test_tampered_model_file_is_refused(cancer, hookforge_cli, hookforge_tmp):
    result = hookforge.train(cancer(SMALL["xgboost"]))
    model_file = result.run_dir / "checkpoints" / "best" / "model.xgb.json"
    model_file.write_text(model_file.read_text().replace('"', '"', 1) + " ")
    pd.DataFrame(np.zeros((2, 30))).to_csv("x.csv", index=False)
    done = hookforge_cli("evaluate", str(result.run_dir))
    assert done.returncode == 2 and "sha256" in done.stderr and "model.xgb.json" in done.stderr
    # rewriting checkpoint.json to match does not help: run.json keeps the hashes too
    meta_file = result.run_dir / "checkpoints" / "best" / "checkpoint.json"
    meta = json.loads(meta_file.read_text())
    from hookforge.fileio import sha256_file

    meta["files"]["model.xgb.json"] = sha256_file(model_file)
    meta_file.write_text(json.dumps(meta))
    done = hookforge_cli("evaluate", str(result.run_dir))
    assert done.returncode == 2 and "run.json" in done.stderr and "model.xgb.json" in done.stderr


def test_skops_loader_refuses_untrusted_types(tmp_path):
    import skops.io as sio

    from hookforge.errors import CheckpointError
    from hookforge_gbm import persist

    sio.dump({"f": pd.Timestamp("2020-01-01")}, tmp_path / "x.skops")
    with pytest.raises(CheckpointError, match="not trusted"):
        persist.load(tmp_path / "x.skops")


def test_gbm_never_imports_torch(cancer, hookforge_tmp):
    config = hookforge_tmp / "c.yaml"
    config.write_text(yaml.safe_dump(cancer(SMALL["lightgbm"])))
    code = ("import sys, hookforge; r = hookforge.train(sys.argv[1]); "
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
            "assert not bad, bad; assert r.status == 'finished'")
    done = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
