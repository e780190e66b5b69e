"""What hookforge must never do: delete what it did not write, upload or load weights that fail
their hashes, lose a record to a bad output location, or accept input that cannot work. Each case
through the CLI: exit 2 (1 for a file-system fault), one line, nothing touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import IRIS_CSV, QUICKSTART

from hookforge.record import RunRecord, pid_alive
from hookforge.seeds import derive_seed


def _one_line_error(result, code=2):
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("hookforge: error")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def _snapshot(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file()}


def test_promote_replaces_only_a_champion_it_wrote(two_runs, hookforge_cli, hookforge_tmp):
    run_a, run_b = two_runs
    compare = ("compare", str(run_a), str(run_b), "--metric", "val/accuracy", "--threshold", "0.1")
    other_run = _snapshot(run_b)
    for target in (run_a, run_b):  # a run's own directory, or another run's
        line = _one_line_error(hookforge_cli(*compare, "--promote", str(target)))
        assert "--promote" in line and str(target) in line
    assert _snapshot(run_b) == other_run
    mine = hookforge_tmp / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own files")
    line = _one_line_error(hookforge_cli(*compare, "--promote", "mine"))
    assert "files hookforge did not write" in line
    assert (mine / "notes.txt").read_text() == "my own files"
    (hookforge_tmp / "afile").write_text("x")
    _one_line_error(hookforge_cli(*compare, "--promote", "afile"))

    first = hookforge_cli(*compare, "--promote", "champion")
    assert first.returncode == 0, first.stderr
    assert json.loads((hookforge_tmp / "champion" / "champion.json").read_text())["written_by"]
    again = hookforge_cli(*compare, "--promote", "champion")  # a champion it wrote: replaced
    assert again.returncode == 0, again.stderr


def test_sync_refuses_a_checkpoint_whose_bytes_changed(two_runs, hookforge_cli):
    run_a, _ = two_runs
    weights = next(p for p in (run_a / "checkpoints" / "best").iterdir() if p.name != "checkpoint.json")
    weights.write_bytes(weights.read_bytes() + b"tampered")
    line = _one_line_error(hookforge_cli("sync", str(run_a), "--tracker", "jsonl"))
    assert "corrupt or was modified" in line
    assert not (run_a / "trackers").exists() or not list((run_a / "trackers").glob("jsonl*"))


def test_unwritable_output_locations_are_one_line_errors(hookforge_cli, hookforge_tmp, two_runs):
    (hookforge_tmp / "afile").write_text("x")
    base = ("train", "-c", QUICKSTART, f"data.path={IRIS_CSV}")
    cases = [(("--run-dir", "afile"), "'afile' is a file"),
             (("--run-dir", "afile/run"), "a part of the path is a file"),
             (("run.output_dir=afile",), "run.output_dir"),
             (("run.output_dir=/proc/hookforge",), "cannot write there")]
    for extra, message in cases:
        line = _one_line_error(hookforge_cli(*base, *extra))
        assert message in line, (extra, line)
    assert (hookforge_tmp / "afile").read_text() == "x"
    run_a, _ = two_runs
    line = _one_line_error(hookforge_cli("predict", str(run_a), str(IRIS_CSV), "-o", "/proc/x.csv"))
    assert "predict -o" in line
    line = _one_line_error(hookforge_cli("search", "-c", QUICKSTART, f"data.path={IRIS_CSV}",
                                         "model.metric=euclidean,manhattan", "run.output_dir=afile"))
    assert "study folder" in line


def test_config_holes_are_one_line_errors(hookforge_cli, hookforge_tmp):
    dup = hookforge_tmp / "dup.yaml"
    dup.write_text(f"data: {{name: csv, path: {IRIS_CSV}}}\nmodel: {{name: centroid}}\n"
                   "run:\n  seed: 1\n  seed: 2\n")
    line = _one_line_error(hookforge_cli("train", "-c", dup))
    assert "'seed' is given twice (lines 4 and 5)" in line
    section = hookforge_tmp / "section.yaml"
    section.write_text(f"model: {{name: centroid}}\ndata: {{name: csv, path: {IRIS_CSV}}}\n"
                       "model: {name: centroid}\n")
    assert "'model' is given twice (lines 1 and 3)" in _one_line_error(hookforge_cli("train", "-c", section))
    line = _one_line_error(hookforge_cli("train", "-c", hookforge_tmp))  # a directory
    assert "is a directory" in line
    base = ("train", "-c", QUICKSTART, f"data.path={IRIS_CSV}", "--run-dir", "never")
    for override, message in [("data.split.vall=0.2", "unknown key 'data.split.vall' (did you mean 'val'?)"),
                              ("model.temperature=.inf", "expected a finite number"),
                              ("run.seed=-1", "run.seed")]:
        line = _one_line_error(hookforge_cli(*base, override))
        assert message in line, (override, line)
    assert not (hookforge_tmp / "never").exists()


def test_a_grid_point_that_cannot_work_fails_before_any_trial(hookforge_cli, hookforge_tmp):
    result = hookforge_cli("search", "-c", QUICKSTART, f"data.path={IRIS_CSV}",
                           "model.temperature=1.0,2.0,-1", "run.name=bad-grid")
    line = _one_line_error(result)
    assert "grid point 2 (model.temperature=-1)" in line
    assert not list((hookforge_tmp / "outputs" / "hpo" / "bad-grid").rglob("run.json"))


def test_trials_score_val_only_and_ties_are_reported(hookforge_cli, hookforge_tmp):
    test_metric = hookforge_cli("search", "-c", QUICKSTART, f"data.path={IRIS_CSV}",
                                "model.metric=euclidean,manhattan", "searcher.metric=test/accuracy")
    assert "not scored on the test split" in _one_line_error(test_metric)
    # the seed does not change the centroid model's fit on the same split: a tie everywhere
    same = hookforge_cli("search", "-c", QUICKSTART, f"data.path={IRIS_CSV}", "run.name=ties",
                         "searcher.metric=val/accuracy", "model.standardize=true,true")
    assert same.returncode == 0, same.stderr
    assert "every trial scored the same" in same.stdout
    trial = hookforge_tmp / "outputs" / "hpo" / "ties" / "trials" / "trial_0000"
    assert set(json.loads((trial / "evaluation.json").read_text())) == {"val"}
    assert "trial 2/2" in same.stderr  # progress: trial i of n, best so far, elapsed, eta
    no_metric = hookforge_cli("search", "-c", QUICKSTART, f"data.path={IRIS_CSV}", "run.name=nm",
                              "model.metric=euclidean,manhattan")
    assert no_metric.returncode == 0 and "no best config is chosen" in no_metric.stderr


def test_search_without_a_config_file(hookforge_cli, hookforge_tmp):
    result = hookforge_cli("search", "--data", "csv", f"data.path={IRIS_CSV}", "data.target=species",
                           "--model", "centroid", "model.metric=euclidean,manhattan",
                           "searcher.metric=val/accuracy", "run.name=noconfig")
    assert result.returncode == 0, result.stderr
    assert (hookforge_tmp / "outputs" / "hpo" / "noconfig" / "best_config.yaml").is_file()


def test_search_output_reuse_never_deletes_a_foreign_record(hookforge_cli, hookforge_tmp, two_runs):
    run_a, _ = two_runs
    trials = hookforge_tmp / "outputs" / "hpo" / "reuse" / "trials"
    trials.mkdir(parents=True)
    import shutil

    shutil.copytree(run_a, trials / "trial_0000")  # a record that is not one of its trials
    before = _snapshot(trials / "trial_0000")
    result = hookforge_cli("search", "-c", QUICKSTART, f"data.path={IRIS_CSV}", "run.name=reuse",
                           "model.metric=euclidean,manhattan")
    assert "is not a trial of study 'reuse'" in _one_line_error(result)
    assert _snapshot(trials / "trial_0000") == before


def test_final_evaluation_rows_at_the_resume_point_are_redone(tmp_path):
    record = RunRecord(tmp_path)
    record.metrics_file.write_text("step,epoch,split,name,value\n0,,model,params,10.0\n"
                                   "5,0,val,loss,0.5\n5,,val,loss,0.5\n7,1,train,loss,0.1\n")
    record.truncate_logs(after_step=5)
    assert [(r["step"], r["epoch"], r["split"]) for r in record.read_metrics()] == \
        [(0, None, "model"), (5, 0, "val")]


def test_a_zombie_process_is_not_alive():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while True:  # exited, not yet reaped
        try:
            state = open(f"/proc/{child.pid}/stat").read().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            pytest.skip("no /proc")
        if state == "Z":
            break
    assert not pid_alive(child.pid)
    child.wait()
    assert pid_alive(os.getpid())


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(42, "stage", "a") == derive_seed(42, "stage", "a")
    seeds = {derive_seed(42, "stage", s, "worker", w) for s in ("a", "b") for w in range(4)}
    assert len(seeds) == 8 and all(0 <= s < 2**32 for s in seeds)
    assert derive_seed(42, "x") != derive_seed(43, "x")


def test_a_file_system_fault_is_one_line_and_resumable(hookforge_cli, hookforge_tmp,
                                                       test_plugins_env):
    result = hookforge_cli("train", "--data", "csv", f"data.path={IRIS_CSV}", "data.target=species",
                           "--model", "disk_full", "--run-dir", "full", env=test_plugins_env)
    line = _one_line_error(result, code=1)
    assert "No space left on device" in line and "--resume" in line and "checkpoints" in line
    assert RunRecord.open(hookforge_tmp / "full").status == "failed"


def test_pre_split_files_and_exported_splits(hookforge_cli, hookforge_tmp):
    import pandas as pd

    frame = pd.read_csv(IRIS_CSV).sample(frac=1.0, random_state=0)
    frame.iloc[:100].to_csv("train.csv", index=False)
    frame.iloc[100:125].to_csv("val.csv", index=False)
    frame.iloc[125:].to_parquet("test.parquet", index=False)
    frame.iloc[125:].to_csv("test.csv", index=False)
    result = hookforge_cli("train", "--data", "csv", "data.path=train.csv", "data.val_path=val.csv",
                           "data.test_path=test.csv", "data.target=species", "--model", "centroid",
                           "data.export_splits=exported", "--run-dir", "r")
    assert result.returncode == 0, result.stderr
    sizes = json.loads((hookforge_tmp / "r" / "splits.json").read_text())["sizes"]
    assert sizes == {"train": 100, "val": 25, "test": 25}  # the files' rows, nothing cut from them
    exported = {name: pd.read_csv(hookforge_tmp / "exported" / f"{name}.csv")
                for name in ("train", "val", "test")}
    assert len(exported["test"]) == 25 and set(exported["test"].species) <= set(frame.species)
    assert sorted(exported["val"].sepal_length) == sorted(frame.iloc[100:125].sepal_length)
    again = hookforge_cli("train", "--data", "csv", "data.path=train.csv", "data.target=species",
                          "--model", "centroid", "data.export_splits=exported")  # its own export
    assert again.returncode == 0, again.stderr
    Path = type(hookforge_tmp)
    mine = Path("mine")
    mine.mkdir()
    (mine / "train.csv").write_text("precious")
    refused = hookforge_cli("train", "--data", "csv", "data.path=train.csv", "data.target=species",
                            "--model", "centroid", "data.export_splits=mine")
    assert "not written by hookforge" in _one_line_error(refused)
    assert (mine / "train.csv").read_text() == "precious"
    pd.DataFrame({"other": [1]}).to_csv("bad_val.csv", index=False)
    bad = hookforge_cli("train", "--data", "csv", "data.path=train.csv", "data.val_path=bad_val.csv",
                        "data.target=species", "--model", "centroid")
    assert "its columns differ from data.path's" in _one_line_error(bad)
    parquet = hookforge_cli("train", "--data", "parquet", "data.path=test.parquet",
                            "data.target=species", "--model", "centroid", "data.split.stratify=false")
    assert parquet.returncode == 0, parquet.stderr


def test_compare_breaks_ties_by_run_name_whatever_the_order(tmp_path):
    from hookforge.compare import compare

    runs = []
    for name in ("b", "a", "c"):
        record = RunRecord(tmp_path / name)
        record.path.mkdir()
        record.update_info(name=name, status="finished")
        record.write_config({"run": {"name": name}})
        record.merge_evaluation("val", {"accuracy": 0.9, "n_samples": 10})
        runs.append(record.path)
    for order in (runs, runs[::-1]):
        result = compare(order, ["val/accuracy"])
        assert result.champion.name == "a" and [r.name for r in result.rows] == ["a", "b", "c"]
        assert "every run has val/accuracy = 0.9" in result.message
