"""`hookforge pipeline`: stages in dependency order with references between them, a record that
skips what is unchanged, exact resume of a killed torch stage, exports verified by hash, and one
clear line for every kind of bad pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import hookforge
from hookforge.errors import CheckpointError, ConfigError, UsageError

ROOT = Path(__file__).resolve().parents[1]
TORCH_TESTS = ROOT / "plugins" / "torch" / "tests"
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
SWEEP = ROOT / "configs" / "sweep_centroid.yaml"


def write(path, stages, **pipeline):
    Path(path).write_text(yaml.safe_dump({"pipeline": {"name": "p", "output_dir": "out", **pipeline},
                                          "stages": stages}))
    return Path(path)


FOUR = [
    {"name": "sweep", "command": "search", "config": str(SWEEP)},
    {"name": "refit", "command": "train", "config": "${stages.sweep.best_config}",
     "seeds": [1, 2, 3], "overrides": ["run.progress=false"]},
    {"name": "check", "command": "evaluate", "run": "${stages.refit.run_dir}", "splits": ["val"]},
    {"name": "bundle", "command": "export", "include": ["refit"]},
]


def test_stages_run_in_order_refer_to_each_other_and_skip_when_unchanged(hookforge_tmp):
    path = write("p.yaml", FOUR)
    result = hookforge.pipeline(path)
    assert result.status == "finished" and result.plan == ["sweep", "refit", "check", "bundle"]
    record = json.loads((hookforge_tmp / "out" / "p" / "pipeline.json").read_text())
    best = record["stages"]["sweep"]["outputs"]["best_config"]
    assert Path(best).is_file() and record["stages"]["refit"]["config"] == best
    assert record["stages"]["refit"]["references"] == {"sweep.best_config": best}
    refit = record["stages"]["refit"]
    assert len(refit["outputs"]["run_dirs"]) == 3
    summary = refit["summary"]["metrics"]["accuracy"]
    assert summary["low"] <= summary["mean"] <= summary["high"]
    assert "val" in json.loads(Path(refit["outputs"]["evaluation"]).read_text())  # the evaluate stage
    manifest = hookforge_tmp / record["stages"]["bundle"]["outputs"]["manifest"]
    assert "refit/checkpoints/best/checkpoint.json" in json.loads(manifest.read_text())["files"]

    again = hookforge.pipeline(path)  # nothing changed: nothing runs
    assert {s.status for s in again.stages.values()} == {"skipped"}
    # an override changes the refit's inputs: it runs again, in a directory of its own, and so do
    # the stages after it; the sweep is skipped; nothing recorded before is touched
    changed = hookforge.pipeline(path, ["refit.model.standardize=false"])
    assert [changed[n].status for n in changed.plan] == ["skipped", "finished", "finished", "finished"]
    assert changed["refit"].outputs["run_dir"] != refit["outputs"]["run_dir"]
    assert Path(refit["outputs"]["run_dir"], "run.json").is_file()


def test_dry_run_shows_the_plan_and_selection_options(hookforge_cli, hookforge_tmp):
    write("p.yaml", FOUR)
    dry = hookforge_cli("pipeline", "-c", "p.yaml", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "[2/4] refit: train -> run" in dry.stdout
    assert "<sweep.best_config once 'sweep' has run>" in dry.stdout
    assert not (hookforge_tmp / "out" / "p" / "pipeline.json").exists()
    ran = hookforge_cli("pipeline", "-c", "p.yaml", "--stages", "sweep", "refit", "--skip", "refit")
    assert ran.returncode == 0, ran.stderr
    assert "sweep" in ran.stdout and "refit " not in ran.stdout
    later = hookforge_cli("pipeline", "-c", "p.yaml", "--from", "refit", "--dry-run")
    assert "[1/3] refit: train -> run" in later.stdout and "sweep" not in later.stdout.split("\n")[0]
    status = hookforge_cli("status", "out/p")
    assert "sweep" in status.stdout and "finished" in status.stdout and "not run" in status.stdout


def test_a_killed_torch_stage_resumes_exactly(hookforge_cli, hookforge_tmp, hookforge_installed,
                                             tiny_config):
    killer = hookforge_installed({"hookforge.plugins": {"killer": "killer:Killer"}}, [TORCH_TESTS])
    config = tiny_config(model={"name": "mlp", "hidden": [16]},
                         loop={"name": "supervised", "epochs": 3, "batch_size": 16, "device": "cpu",
                               "checkpoint_every_n_steps": 2},
                         run={"log_every_n_steps": 1})
    Path("mlp.yaml").write_text(yaml.safe_dump(config))
    stages = [{"name": "fit", "command": "train", "config": "mlp.yaml"},
              {"name": "again", "command": "evaluate", "run": "${stages.fit.run_dir}"}]
    write("p.yaml", stages)
    straight = hookforge_cli("pipeline", "-c", "p.yaml", "--output-dir", "straight")
    assert straight.returncode == 0, straight.stderr
    killed = hookforge_cli("pipeline", "-c", "p.yaml", "--output-dir", "killed",
                           env={**killer, "HOOKFORGE_TEST_KILL": "9:SIGKILL"})
    assert killed.returncode == -9
    record = json.loads(Path("killed/pipeline.json").read_text())
    assert record["stages"]["fit"]["status"] == "running"  # what a kill leaves
    refused = hookforge_cli("pipeline", "-c", "p.yaml", "--output-dir", "killed", env=killer)
    assert refused.returncode == 2 and "add --resume" in refused.stderr
    resumed = hookforge_cli("pipeline", "-c", "p.yaml", "--output-dir", "killed", "--resume",
                            env=killer)
    assert resumed.returncode == 0, resumed.stderr

    def metrics(base):
        run_dir = json.loads(Path(base, "pipeline.json").read_text())["stages"]["fit"]["outputs"]["run_dir"]
        rows = hookforge.RunRecord.open(run_dir).read_metrics()
        return [(r["step"], r["split"], r["name"], r["value"]) for r in rows
                if r["split"] not in ("system",) and r["name"] not in
                ("samples_per_s", "epoch_time_s", "peak_memory_mb")]

    assert metrics("killed") == metrics("straight")


def test_an_export_is_verified_when_loaded(hookforge_tmp):
    path = write("p.yaml", [{"name": "fit", "command": "train", "config": str(QUICKSTART)},
                            {"name": "bundle", "command": "export", "needs": ["fit"]}])
    result = hookforge.pipeline(path)
    directory = Path(result["bundle"].outputs["dir"])
    from hookforge.export import load_model, verify

    model = load_model(directory, "fit")
    assert model.plugin_name == "centroid"
    from hookforge.status import describe

    lines, _ = describe(result["fit"].outputs["run_dir"])  # `hookforge status RUN_DIR`
    assert "finished" in lines[0] and "checkpoints: best" in "\n".join(lines)
    lines, _ = describe(directory)
    assert "every sha256 verified" in lines[0]
    (directory / "fit" / "evaluation.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"evaluation\.json changed since export"):
        verify(directory)
    (directory / "fit" / "extra.txt").write_text("x")
    with pytest.raises(CheckpointError):
        load_model(directory, "fit")


@pytest.mark.parametrize("case", ["cycle", "reference", "output", "validation", "stages", "unknown-key",
                                  "missing-plugin"])
def test_bad_pipelines_are_one_line_and_exit_2(case, hookforge_cli, hookforge_tmp):
    base = {"name": "a", "command": "train", "config": str(QUICKSTART)}
    stages, args, expected = {
        "cycle": ([{**base, "needs": ["c"]}, {**base, "name": "b", "needs": ["a"]},
                   {**base, "name": "c", "needs": ["b"]}], [], "cycle: a -> c -> b -> a"),
        "reference": ([base, {"name": "e", "command": "evaluate", "run": "${stages.aa.run_dir}"}], [],
                      "no stage 'aa' (did you mean 'a'?)"),
        "output": ([base, {"name": "e", "command": "evaluate", "run": "${stages.a.rundir}"}], [],
                   "has no output 'rundir' (did you mean 'run_dir'?)"),
        "validation": ([{**base, "overrides": ["model.standardise=true"]}], ["--dry-run"],
                       "stage 'a':"),
        "stages": ([base], ["--stages", "b"], "--stages b: no such stage"),
        "unknown-key": ([{**base, "comand": "x"}], [], "stages[a].comand"),
        "missing-plugin": ([{**base, "overrides": ["model.name=transformerz"]}], ["--dry-run"],
                           "transformerz"),
    }[case]
    write("p.yaml", stages)
    done = hookforge_cli("pipeline", "-c", "p.yaml", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert expected in lines[0], lines[0]
    assert not (hookforge_tmp / "out" / "p" / "stages").exists()  # nothing ran


def test_python_errors_name_the_problem(hookforge_tmp):
    with pytest.raises(UsageError, match="pipeline file not found"):
        hookforge.pipeline("nope.yaml")
    Path("bad.yaml").write_text("stages: 3\n")
    with pytest.raises(ConfigError, match="stages"):
        hookforge.pipeline("bad.yaml")


def test_a_script_stage_prepares_data_for_the_next(hookforge_tmp):
    Path("make.py").write_text("import sys, pathlib\npathlib.Path(sys.argv[1]).write_text("
                               "'a,b,species\\n' + ''.join(f'{i},{i % 3},{\"xyz\"[i % 3]}\\n' "
                               "for i in range(60)))\n")
    Path("train.yaml").write_text(yaml.safe_dump({
        "run": {"name": "t", "output_dir": "outputs", "progress": False},
        "data": {"name": "csv", "path": "made.csv", "target": "species"},
        "model": {"name": "centroid"}}))
    path = write("p.yaml", [{"name": "prepare", "command": "script", "script": "make.py",
                             "args": ["made.csv"], "produces": "made.csv"},
                            {"name": "fit", "command": "train", "config": "train.yaml",
                             "needs": ["prepare"]}])
    result = hookforge.pipeline(path)
    assert result["prepare"].outputs["path"].endswith("made.csv")
    assert result["fit"].status == "finished"
    skipped = hookforge.pipeline(path, skip=["prepare"])  # --skip-data-prep: its outputs stay known
    assert skipped.plan == ["fit"] and skipped["fit"].status == "skipped"


def test_a_requeued_job_continues_with_the_resume_command(hookforge_tmp):
    from hookforge.cluster import SlurmCommand, plan, resume_argv

    jobs = plan(["train", "-c", "x.yaml"], hookforge_tmp / "jobs")
    run_dir = jobs[0].argv[-1]
    assert jobs[0].argv[-2:] == ["--run-dir", run_dir]
    assert resume_argv(jobs[0].argv) == jobs[0].argv  # nothing recorded yet: start it
    Path(run_dir).mkdir(parents=True)
    Path(run_dir, "run.json").write_text("{}")
    assert resume_argv(jobs[0].argv) == ["train", "--resume", run_dir]
    assert resume_argv(["pipeline", "-c", "p.yaml"]) == ["pipeline", "-c", "p.yaml", "--resume"]
    delayed = SlurmCommand(jobs[0].argv, str(hookforge_tmp), "s.json").checkpoint()
    assert delayed.function.argv == ["train", "--resume", run_dir]  # what submitit requeues
