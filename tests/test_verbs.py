"""evaluate, predict, compare, sync and the grid searcher, end to end through the CLI and Python."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import IRIS_CSV, QUICKSTART

import hookforge
from hookforge.compare import compare, jeffreys_interval
from hookforge.errors import UsageError


def test_evaluate_merges_into_evaluation_json(hookforge_cli, two_runs):
    run_a, _ = two_runs
    before = json.loads((run_a / "evaluation.json").read_text())
    (run_a / "evaluation.json").write_text(json.dumps({"val": before["val"]}))
    result = hookforge_cli("evaluate", str(run_a), "--split", "test")
    assert result.returncode == 0, result.stderr
    assert "test (n=30): accuracy=" in result.stdout
    after = json.loads((run_a / "evaluation.json").read_text())
    assert after["test"]["accuracy"] == before["test"]["accuracy"]  # same split, same model
    assert after["val"] == before["val"]
    bad = hookforge_cli("evaluate", str(run_a), "--split", "holdout")
    assert bad.returncode == 2 and "has no 'holdout' split" in bad.stderr
    missing = hookforge_cli("evaluate", "nowhere")
    assert missing.returncode == 2 and "not a run directory" in missing.stderr


def test_predict_writes_labels_and_probabilities(hookforge_cli, two_runs, hookforge_tmp):
    run_a, _ = two_runs
    with open(IRIS_CSV) as handle:
        rows = list(csv.DictReader(handle))
    inputs = hookforge_tmp / "inputs.csv"
    with open(inputs, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["petal_width", "sepal_length", "sepal_width", "petal_length", "extra"])
        for row in rows[:3] + rows[-3:]:
            writer.writerow([row["petal_width"], row["sepal_length"], row["sepal_width"],
                             row["petal_length"], "ignored"])
    result = hookforge_cli("predict", str(run_a), str(inputs), "-o", "preds.csv")
    assert result.returncode == 0, result.stderr
    with open(hookforge_tmp / "preds.csv") as handle:
        preds = list(csv.DictReader(handle))
    assert [p["prediction"] for p in preds] == ["setosa"] * 3 + ["virginica"] * 3
    assert set(preds[0]) == {"prediction", "prob_setosa", "prob_versicolor", "prob_virginica"}
    assert sum(float(preds[0][k]) for k in preds[0] if k.startswith("prob_")) == pytest.approx(1)

    parquet = hookforge_cli("predict", str(run_a), str(inputs), "-o", "preds.parquet")
    assert parquet.returncode == 0, parquet.stderr
    piped = hookforge_cli("predict", str(run_a), str(inputs), "-o", "-")  # CSV on stdout
    assert piped.returncode == 0, piped.stderr
    assert list(csv.DictReader(piped.stdout.splitlines())) == preds
    assert not (hookforge_tmp / "-").exists()

    (hookforge_tmp / "short.csv").write_text("sepal_length,sepal_width\n1,2\n")
    short = hookforge_cli("predict", str(run_a), "short.csv", "-o", "x.csv")
    assert short.returncode == 2 and "column 'petal_length' used in training is missing" in short.stderr
    (hookforge_tmp / "text.csv").write_text(
        "sepal_length,sepal_width,petal_length,petal_width\n1,2,three,4\n")
    text = hookforge_cli("predict", str(run_a), "text.csv", "-o", "x.csv")
    assert text.returncode == 2 and "column 'petal_length' is not numeric" in text.stderr
    assert "predict input text.csv" in text.stderr  # the input is named, not the training file
    nothing = hookforge_cli("predict", str(run_a), "nothing.csv", "-o", "x.csv")
    assert nothing.returncode == 2 and "input file not found" in nothing.stderr

    # from Python, rows in memory: the same reader, checks and output as the file
    import pandas as pd

    run = hookforge.Run.open(run_a)
    frame = run.predict_frame(pd.read_csv(inputs), model=run.load_model())
    assert frame.equals(pd.read_csv(hookforge_tmp / "preds.csv"))
    with pytest.raises(hookforge.errors.DataError, match="'petal_length' used in training is missing"):
        run.predict_frame(pd.DataFrame({"sepal_length": [1.0], "sepal_width": [2.0]}))


def test_jeffreys_interval_matches_the_beta_posterior():
    from scipy.stats import beta

    low, high = jeffreys_interval(27, 30, 0.8)
    assert low == pytest.approx(beta.ppf(0.1, 27.5, 3.5))
    assert high == pytest.approx(beta.ppf(0.9, 27.5, 3.5))
    assert jeffreys_interval(30, 30)[1] == 1.0 and jeffreys_interval(0, 30)[0] == 0.0
    wide, narrow = jeffreys_interval(8, 10), jeffreys_interval(800, 1000)
    assert wide[1] - wide[0] > narrow[1] - narrow[0]


def test_compare_ranks_intervals_pareto_and_threshold(two_runs, hookforge_cli):
    run_a, run_b = two_runs
    acc = {r: json.loads((r / "evaluation.json").read_text())["val"]["accuracy"] for r in two_runs}
    best = max(two_runs, key=lambda r: acc[r])
    result = compare([run_a, run_b], ["val/accuracy"])
    assert result.rows[0].run_dir == best and result.rows[0].rank == 1
    assert result.champion.run_dir == best
    n = json.loads((best / "evaluation.json").read_text())["val"]["n_samples"]
    assert result.rows[0].intervals["val/accuracy"] == pytest.approx(
        jeffreys_interval(round(acc[best] * n), n, 0.8))
    assert result.rows[0].pareto

    refused = compare([run_a, run_b], ["val/accuracy"], threshold=0.99)
    assert refused.champion is None and "does not clear the threshold" in refused.message

    loss_first = compare([run_a, run_b], ["val/accuracy:min"])
    assert loss_first.rows[0].run_dir != best

    cli = hookforge_cli("compare", str(run_a), str(run_b), "--metric", "val/accuracy",
                        "--metric", "val/f1_macro", "--threshold", "0.5", "--json")
    assert cli.returncode == 0, cli.stderr
    data = json.loads(cli.stdout)
    assert data["champion"] == str(best) and len(data["metrics"]) == 2
    assert all(row["pareto"] in (True, False) for row in data["runs"])
    table = hookforge_cli("compare", str(run_a), str(run_b), "--interval", "0.95")
    assert "95% interval" in table.stdout and "champion:" in table.stdout


def test_pareto_front_over_two_metrics(tmp_path):
    from hookforge.record import RunRecord

    runs = []
    for i, (acc, latency) in enumerate([(0.9, 10.0), (0.8, 5.0), (0.7, 20.0)]):
        record = RunRecord(tmp_path / f"r{i}")
        record.path.mkdir()
        record.update_info(name=f"r{i}", status="finished")
        record.write_config({"run": {"name": f"r{i}"}})
        record.merge_evaluation("val", {"accuracy": acc, "latency_ms": latency, "n_samples": 100})
        runs.append(record.path)
    result = compare(runs, ["val/accuracy", "val/latency_ms"])
    front = {row.run_dir.name for row in result.rows if row.pareto}
    assert front == {"r0", "r1"}  # r2 is worse on both


def test_compare_errors(two_runs):
    with pytest.raises(UsageError, match=r"no run has the metric 'val/acuracy'.*did you mean"):
        compare(list(two_runs), ["val/acuracy"])
    with pytest.raises(UsageError, match="not a run directory"):
        compare(["nowhere"])
    with pytest.raises(UsageError, match="direction must be max or min"):
        compare(list(two_runs), ["val/accuracy:up"])


def test_sync_replays_idempotently(hookforge_cli, two_runs):
    run_a, _ = two_runs
    first = hookforge_cli("sync", str(run_a), "--tracker", "jsonl")
    assert first.returncode == 0, first.stderr
    content = (run_a / "tracker.jsonl").read_text()
    lines = [json.loads(line) for line in content.splitlines()]
    metrics = [line for line in lines if line["type"] == "metric"]
    recorded = hookforge.RunRecord.open(run_a).read_metrics()
    assert len(metrics) == len(recorded) > 0
    assert lines[-1] == {"type": "end", "status": "finished"}
    second = hookforge_cli("sync", str(run_a), "--tracker", "jsonl")
    assert second.returncode == 0 and (run_a / "tracker.jsonl").read_text() == content
    local = hookforge_cli("sync", str(run_a), "--tracker", "local")
    assert local.returncode == 0 and "nothing to do" in local.stdout
    unknown = hookforge_cli("sync", str(run_a), "--tracker", "mlfow")
    assert unknown.returncode == 2 and "cannot sync to tracker 'mlfow'" in unknown.stderr
    not_run = hookforge_cli("sync", "nowhere", "--tracker", "jsonl")
    assert not_run.returncode == 2 and "not a run directory" in not_run.stderr


def test_jsonl_tracker_sees_the_same_points_as_the_local_record(quickstart):
    quickstart["trackers"] = ["local", "jsonl"]
    result = hookforge.train(quickstart)
    lines = [json.loads(line) for line in (result.run_dir / "tracker.jsonl").read_text().splitlines()]
    live = sorted((m["key"], m["step"], m["value"]) for m in lines if m["type"] == "metric")
    local = sorted((f"{r['split']}/{r['name']}", r["step"], r["value"])
                   for r in hookforge.RunRecord.open(result.run_dir).read_metrics())
    assert live == local


def test_grid_sweep_from_the_command_line(hookforge_cli, hookforge_tmp):
    result = hookforge_cli("search", "-c", QUICKSTART, f"data.path={IRIS_CSV}",
                           "model.metric=euclidean,manhattan", "model.standardize=true,false",
                           "searcher.metric=val/accuracy", "--study", "sweep")
    assert result.returncode == 0, result.stderr
    study = hookforge_tmp / "outputs" / "hpo" / "sweep"
    trials = json.loads((study / "trials.json").read_text())
    assert len(trials) == 4 and {t["state"] for t in trials} == {"complete"}
    assert {(t["params"]["model.metric"], t["params"]["model.standardize"]) for t in trials} == \
        {("euclidean", True), ("euclidean", False), ("manhattan", True), ("manhattan", False)}
    for trial in trials:
        info = json.loads((hookforge_tmp / trial["run_dir"] / "run.json").read_text())
        assert info["status"] == "finished" and info["parent"]["study"] == "sweep"
    with open(study / "trials.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 4
    best = max(trials, key=lambda t: t["value"])
    train = hookforge_cli("train", "-c", study / "best_config.yaml", "--run-dir", "best")
    assert train.returncode == 0, train.stderr
    assert "study sweep: 4 trials" in result.stdout

    again = hookforge_cli("search", "-c", QUICKSTART, f"data.path={IRIS_CSV}",
                          "model.metric=euclidean,manhattan", "model.standardize=true,false",
                          "searcher.metric=val/accuracy", "--study", "sweep")
    assert again.returncode == 0 and again.stderr.count("already finished") == 4
    assert json.loads((study / "trials.json").read_text())[best["number"]]["value"] == best["value"]


def test_grid_search_from_a_config_section_in_python(tiny_config):
    from hookforge.config import load_config
    from hookforge.search import SearchSession

    config = load_config(tiny_config(model={"name": "centroid"},
                                     searcher={"name": "grid", "metric": "val/f1_macro",
                                               "params": {"model.temperature": [0.5, 2.0]}}))
    result = SearchSession(config).search()
    assert [t.params for t in result.trials] == [{"model.temperature": 0.5},
                                                 {"model.temperature": 2.0}]
    assert result.best and result.best[0].value == max(t.value for t in result.trials)


def test_grid_search_bad_input(hookforge_cli):
    typo = hookforge_cli("search", "-c", QUICKSTART, f"data.path={IRIS_CSV}", "model.metrik=a,b")
    assert typo.returncode == 2 and "'model.metrik' is not a config key" in typo.stderr
    nothing = hookforge_cli("search", "-c", QUICKSTART, f"data.path={IRIS_CSV}", "searcher=grid")
    assert nothing.returncode == 2 and "nothing to sweep" in nothing.stderr
    metric = hookforge_cli("search", "-c", QUICKSTART, f"data.path={IRIS_CSV}",
                           "model.metric=euclidean,manhattan", "searcher.metric=val/acc")
    assert metric.returncode == 2 and "objective metric 'val/acc' was never logged" in metric.stderr
    no_searcher = hookforge_cli("search", "-c", QUICKSTART, f"data.path={IRIS_CSV}")
    assert no_searcher.returncode == 2 and "'searcher' section is missing" in no_searcher.stderr


def test_latency_evaluator_times_the_runs_model_at_the_final_evaluation(quickstart):
    """`latency` predicts the split's first rows again in batches (never while a loop scores val
    during training) and reports the fastest pass in ms per row, also for `Run.open().evaluate`."""
    from hookforge.testing import PredictionRecorder

    recorder = PredictionRecorder()
    config = {**quickstart, "evaluators": [
        "classification", {"name": "latency", "rows": 10, "batch_size": 4, "repeats": 2}]}
    run = hookforge.Run.from_config(config, plugins=[recorder])
    result = run.fit()
    sizes = {split: len(part) for split, part in run.dataset.splits.items()}
    timed = [4, 4, 2] * 2
    assert sorted(recorder.sizes) == sorted([sizes["val"], sizes["test"], *timed, *timed])
    for split in ("val", "test"):
        assert 0 < result.evaluation[split]["latency_ms"] < 1000
    again = hookforge.Run.open(result.run_dir).evaluate(["test"])["test"]
    assert again["latency_ms"] > 0 and again["accuracy"] == result.evaluation["test"]["accuracy"]


def test_classification_averages_equal_sklearns_own():
    import numpy as np
    from sklearn import metrics as skm

    from hookforge.builtins.evaluators.classification import ClassificationEvaluator
    from hookforge.types import Predictions

    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    y_pred[y_pred == 3] = 2  # a class never predicted: zero_division matters
    out = ClassificationEvaluator().evaluate(
        None, "val", Predictions(y_pred, y_true=y_true, classes=["a", "b", "c", "d"]), final=False)
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=[0, 1, 2, 3],
                                                         average=average, zero_division=0)
        assert out[f"precision_{average}"] == pytest.approx(p)
        assert out[f"recall_{average}"] == pytest.approx(r)
        assert out[f"f1_{average}"] == pytest.approx(f)


@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("case", range(6))
def test_classification_metrics_equal_sklearns(n_classes, case):
    """The evaluator computes its metrics from one confusion matrix (sklearn validates inputs on
    every call); every value must equal scikit-learn's on random data, ties and absent classes."""
    import numpy as np
    from sklearn import metrics as skm

    from hookforge.builtins.evaluators.classification import ClassificationEvaluator
    from hookforge.types import Predictions

    rng = np.random.default_rng(case)
    n = int(rng.integers(5, 300))
    y_true = rng.integers(0, n_classes, n)
    if case == 1:
        y_true[y_true == n_classes - 1] = 0  # a class absent from the truth
    scores = rng.random((n, n_classes))
    if case == 2:
        scores = np.round(scores, 1) + 0.05  # many tied scores
    scores /= scores.sum(axis=1, keepdims=True)
    y_pred = scores.argmax(axis=1)
    if case == 3:
        y_pred[:] = 0  # one class predicted for everything
    labels = list(range(n_classes))
    names = [f"c{i}" for i in labels]
    evaluator = ClassificationEvaluator(ClassificationEvaluator.Config(beta=0.5))
    out = evaluator.evaluate(None, "val", Predictions(y_pred, scores, classes=names, y_true=y_true),
                             final=False)
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                         average=average, zero_division=0)
        assert (out[f"precision_{average}"], out[f"recall_{average}"], out[f"f1_{average}"]) == \
            pytest.approx((p, r, f))
        assert out[f"fbeta_{average}"] == pytest.approx(skm.fbeta_score(
            y_true, y_pred, beta=0.5, labels=labels, average=average, zero_division=0))
    per_class = skm.f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    assert [out[f"f1_class_{c}"] for c in names] == pytest.approx(per_class)
    assert out["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    assert out["log_loss"] == pytest.approx(skm.log_loss(y_true, scores, labels=labels))
    present = sorted(set(y_true.tolist()))
    if n_classes == 2:
        expected = skm.roc_auc_score(y_true, scores[:, 1]) if len(present) == 2 else None
    else:
        expected = np.mean([skm.roc_auc_score(y_true == i, scores[:, i]) for i in present]) \
            if len(present) > 1 else None
    assert out.get("auroc_macro") == (pytest.approx(expected) if expected is not None else None)


def test_classification_metrics_of_string_labels_and_nan_scores():
    import numpy as np
    from sklearn import metrics as skm

    from hookforge.builtins.evaluators.classification import ClassificationEvaluator
    from hookforge.types import Predictions

    y_true = np.array(["cat", "dog", "dog", "eel", "cat", "dog"])
    y_pred = np.array(["cat", "dog", "cat", "eel", "eel", "dog"])
    out = ClassificationEvaluator().evaluate(None, "val", Predictions(y_pred, y_true=y_true),
                                             final=False)
    assert out["f1_macro"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert out["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred).tolist()
    diverged = np.full((6, 2), np.nan)
    out = ClassificationEvaluator().evaluate(
        None, "val", Predictions(np.zeros(6, int), diverged, classes=["a", "b"],
                                 y_true=np.array([0, 1, 0, 1, 0, 1])), final=False)
    assert np.isnan(out["auroc_macro"]) and np.isnan(out["log_loss"])


def test_evaluate_gives_trackers_the_life_cycle_of_a_run(hookforge_cli, hookforge_tmp):
    done = hookforge_cli("train", "-c", QUICKSTART, f"data.path={IRIS_CSV}", "--tracker", "jsonl",
                         "--run-dir", "r")
    assert done.returncode == 0, done.stderr
    again = hookforge_cli("evaluate", "r", "--split", "test")
    assert again.returncode == 0, again.stderr
    lines = [json.loads(line) for line in (hookforge_tmp / "r" / "tracker.jsonl").read_text().splitlines()]
    types = [line["type"] for line in lines]
    second = len(types) - 1 - types[::-1].index("start")  # the evaluate session
    assert types[second:][-1] == "end" and lines[-1]["status"] == "finished"
    metrics = [line for line in lines[second:] if line["type"] == "metric"]
    assert metrics and all(m["key"].startswith("test/") for m in metrics)
