"""Tuning, ensembles, champion selection and MLflow models with hookforge-gbm."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import hookforge
from hookforge.run import Run

ROOT = Path(__file__).resolve().parents[3]


def _train_three(cancer, hookforge_tmp):
    models = [{"name": "lightgbm", "n_estimators": 100, "num_leaves": 7},
              {"name": "xgboost", "n_estimators": 100, "max_depth": 3},
              {"name": "logistic_regression"}]
    for i, model in enumerate(models):
        hookforge.train(cancer(model, evaluators=[{"name": "classification", "beta": 0.5}]),
                        run_dir=hookforge_tmp / "runs" / f"r{i}")
    return [hookforge_tmp / "runs" / f"r{i}" for i in range(3)]


def test_voting_ensemble_of_the_top_runs(cancer, hookforge_tmp, hookforge_cli):
    dirs = _train_three(cancer, hookforge_tmp)
    config = cancer({"name": "voting", "runs": [str(hookforge_tmp / "runs" / "*")], "top_k": 2,
                     "metric": "val/log_loss"})
    result = hookforge.train(config, run_dir=hookforge_tmp / "ensemble")
    info = json.loads((result.run_dir / "run.json").read_text())
    ranked = sorted(dirs, key=lambda d: json.loads((d / "evaluation.json").read_text())["val"]["log_loss"])
    assert [m["run_dir"] for m in info["ensemble"]["members"]] == [str(d) for d in ranked[:2]]
    assert {m["model"] for m in info["ensemble"]["members"]} <= {"lightgbm", "logistic_regression",
                                                                 "random_forest", "xgboost"}
    assert result.metric("test/accuracy") >= 0.9
    # the ensemble is self-contained: it predicts after the member runs are gone
    import shutil

    for d in dirs:
        shutil.rmtree(d)
    run = Run.open(result.run_dir)
    dataset = run.load_data()
    scores = run.load_model().predict(dataset.split("test").X).scores
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
    assert run.evaluate(["test"])["test"]["accuracy"] == result.metric("test/accuracy")
    # no finished run matches: a clear error
    done = hookforge_cli("train", "--data", "sklearn", "data.dataset=breast_cancer", "--model", "voting",
                         "model.runs=[nowhere/*]")
    assert done.returncode == 2 and "no finished run" in done.stderr


def test_compare_promotes_the_champion_only_above_the_threshold(cancer, hookforge_tmp, hookforge_cli):
    dirs = _train_three(cancer, hookforge_tmp)
    done = hookforge_cli("compare", *dirs, "--metric", "val/fbeta_macro", "--threshold", "1.01",
                         "--promote", "champion")
    assert done.returncode == 0 and "no champion" in done.stdout
    assert not (hookforge_tmp / "champion").exists()
    done = hookforge_cli("compare", *dirs, "--metric", "val/fbeta_macro", "--threshold", "0.8",
                         "--promote", "champion", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    champion = json.loads((hookforge_tmp / "champion" / "champion.json").read_text())
    assert champion["source"] == report["champion"] and "accuracy" in champion["test"]
    assert sorted(p.name for p in (hookforge_tmp / "champion" / "checkpoints").iterdir()) == ["best"]
    X = pd.DataFrame(Run.open(report["champion"]).load_data().split("test").X)
    X.to_csv("inputs.csv", index=False)
    done = hookforge_cli("predict", "champion", "inputs.csv", "-o", "preds.csv")
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv("preds.csv")) == len(X)


def test_gbm_plan_tunes_every_model_and_refits_the_best(hookforge_tmp, hookforge_cli):
    plan = yaml.safe_load((ROOT / "configs" / "hpo" / "gbm_breast_cancer.yaml").read_text())
    plan["run"]["output_dir"] = str(hookforge_tmp / "outputs")
    plan["searcher"]["n_trials"] = 2
    plan["searcher"]["stages"]["refit"]["seeds"] = [1, 2]
    for stage in ("lightgbm", "xgboost"):
        plan["searcher"]["stages"][stage]["overrides"]["model.n_estimators"] = 30
    plan["searcher"]["stages"]["random_forest"]["space"]["model.n_estimators"]["high"] = 150
    Path("plan.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    done = hookforge_cli("search", "-c", "plan.yaml")
    assert done.returncode == 0, done.stderr
    study = hookforge_tmp / "outputs" / "hpo" / "gbm-breast-cancer"
    best = {}
    for stage in ("lightgbm", "xgboost", "logistic_regression", "random_forest"):
        summary = json.loads((study / stage / "summary.json").read_text())
        assert summary["status"] == "complete"
        best[stage] = summary["best"][0]["value"]
        trials = json.loads((study / stage / "trials.json").read_text())
        assert {t["params"]["model.name"] for t in trials} == {stage}
    refit = json.loads((study / "refit" / "summary.json").read_text())
    winner = max(best, key=best.get)
    assert refit["from_stage"] == winner and refit["params"]["model.name"] == winner
    assert refit["stats"]["test/accuracy"]["n"] == 2
    config = yaml.safe_load((study / "refit" / "best_config.yaml").read_text())
    assert config["model"]["name"] == winner


def test_median_pruner_prunes_boosting_rounds(cancer, hookforge_tmp, hookforge_cli):
    config = cancer({"name": "lightgbm", "n_estimators": 60, "early_stopping_rounds": None},
                    searcher={"name": "optuna", "metric": "val/log_loss", "n_trials": 4,
                              "sampler": {"name": "grid"},
                              "pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 5},
                              "space": {"model.learning_rate": {"type": "categorical",
                                                                "choices": [0.3, 0.2, 0.0005, 0.0004]}}})
    config["run"]["seed"] = 3
    Path("search.yaml").write_text(yaml.safe_dump(config))
    done = hookforge_cli("search", "-c", "search.yaml")
    assert done.returncode == 0, done.stderr
    trials = json.loads((hookforge_tmp / "outputs" / "hpo" / "test" / "search" / "trials.json").read_text())
    states = {t["params"]["model.learning_rate"]: t["state"] for t in trials}
    assert "pruned" in states.values(), states
    assert all(states[lr] == "complete" for lr in (0.3, 0.2))  # good rates are never pruned
    pruned = next(t for t in trials if t["state"] == "pruned")
    metrics = pd.read_csv(Path(pruned["run_dir"]) / "metrics.csv")
    assert metrics[(metrics.split == "val") & (metrics.name == "log_loss")].step.max() < 60


def test_mlflow_gets_rounds_and_a_loadable_model(hookforge_tmp, hookforge_cli):
    pytest.importorskip("hookforge_mlflow")
    import mlflow

    config = yaml.safe_load((ROOT / "configs" / "gbm_quickstart.yaml").read_text())
    config["run"]["output_dir"] = str(hookforge_tmp / "outputs")
    config["trackers"][1]["tracking_uri"] = f"sqlite:///{hookforge_tmp / 'mlruns.db'}"
    Path("quick.yaml").write_text(yaml.safe_dump(config))
    done = hookforge_cli("train", "-c", "quick.yaml", "--run-dir", "run")
    assert done.returncode == 0, done.stderr
    done = hookforge_cli("train", "-c", "quick.yaml", "--run-dir", "run_lr", "--model",
                         "logistic_regression")
    assert done.returncode == 0, done.stderr
    # set_tracking_uri also exports MLFLOW_TRACKING_URI to later subprocesses: undone at the end
    mlflow.set_tracking_uri(f"sqlite:///{hookforge_tmp / 'mlruns.db'}")
    try:
        _check_mlflow_runs(mlflow, hookforge_tmp, hookforge_cli)
    finally:
        mlflow.set_tracking_uri(None)


def _check_mlflow_runs(mlflow, hookforge_tmp, hookforge_cli):
    client = mlflow.MlflowClient()
    from sklearn.datasets import load_breast_cancer

    X = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(10)
    for run_dir, flavor in (("run", "lightgbm"), ("run_lr", "sklearn")):
        run_id = json.loads((hookforge_tmp / run_dir / "trackers" / "mlflow.json").read_text())["run_id"]
        run = client.get_run(run_id)
        assert run.data.tags["hookforge.model_flavor"] == flavor
        local = pd.read_csv(hookforge_tmp / run_dir / "metrics.csv")
        n_local = len(local[(local.split == "val") & (local.name == "accuracy")])
        assert len(client.get_metric_history(run_id, "val/accuracy")) == n_local
        loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
        ours = Run.open(hookforge_tmp / run_dir).load_model().predict(X)
        theirs = np.asarray(loaded.predict(X if flavor == "sklearn" else X.to_numpy(np.float32)))
        if flavor == "sklearn":
            np.testing.assert_array_equal(theirs, ours.y_pred)
        else:
            np.testing.assert_allclose(theirs, ours.scores[:, 1], rtol=1e-6)
    done = hookforge_cli("compare", "--tracker", "mlflow", "--experiment", "gbm_quickstart", "--metric",
                         "val/accuracy", "--threshold", "0.5", "--register-as", "cancer",
                         env={"MLFLOW_TRACKING_URI": f"sqlite:///{hookforge_tmp / 'mlruns.db'}"})
    assert done.returncode == 0, done.stderr
    champion = mlflow.pyfunc.load_model("models:/cancer@champion")
    assert len(champion.predict(X if champion.metadata.flavors.get("sklearn") else
                                X.to_numpy(np.float32))) == 10


def test_tune_from_python_one_stage(hookforge_tmp):
    plan = yaml.safe_load((ROOT / "configs" / "hpo" / "gbm_breast_cancer.yaml").read_text())
    plan["run"]["output_dir"] = str(hookforge_tmp / "outputs")
    result = hookforge.tune(plan, ["searcher.n_trials=3"], stage="logistic_regression")
    assert len(result.trials) == 3 and result.best[0].params["model.name"] == "logistic_regression"
    best = yaml.safe_load((result.output_dir / "best_config.yaml").read_text())
    assert hookforge.train(best).metric("test/accuracy") > 0.9
