"""The optuna searcher through `hookforge search` and Python."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SPACE = {"model.temperature": {"type": "loguniform", "low": 0.05, "high": 5.0},
         "model.metric": {"type": "categorical", "choices": ["euclidean", "manhattan"]},
         "model.standardize": {"type": "categorical", "choices": [True, False],
                               "when": {"model.metric": "manhattan"}}}
STUDY = Path("outputs") / "hpo" / "hpo"


def trials(stage_dir: Path) -> list[dict]:
    return json.loads((stage_dir / "trials.json").read_text())


def test_single_stage_outputs_and_seeded_sampler(plan, hookforge_cli, hookforge_tmp):
    config = plan({"n_trials": 6, "space": SPACE})
    result = hookforge_cli("search", "-c", config)
    assert result.returncode == 0, result.stderr
    stage = hookforge_tmp / STUDY / "search"
    rows = trials(stage)
    assert [t["number"] for t in rows] == list(range(6))
    assert {t["state"] for t in rows} == {"complete"}
    for name in ("trials.csv", "summary.json", "best_config.yaml", "optimization_history.png"):
        assert (stage / name).exists(), name
    assert (hookforge_tmp / STUDY / "study.db").exists()  # default storage: SQLite, one worker
    assert not list((hookforge_tmp / "outputs").rglob("*.pkl"))
    summary = json.loads((stage / "summary.json").read_text())
    best = max(rows, key=lambda t: t["value"])
    assert summary["best"][0]["number"] == best["number"]
    for row in rows:  # each trial is a full run with its own record
        info = json.loads((Path(row["run_dir"]) / "run.json").read_text())
        assert info["status"] == "finished" and info["parent"]["trial"] == row["number"]
    again = hookforge_cli("train", "-c", stage / "best_config.yaml", "--run-dir", "best")
    assert again.returncode == 0, again.stderr

    # the same seed samples the same parameters in a fresh study
    other = hookforge_cli("search", "-c", config, "--study", "again")
    assert other.returncode == 0, other.stderr
    params = [t["params"] for t in trials(hookforge_tmp / "outputs" / "hpo" / "again" / "search")]
    assert params == [t["params"] for t in rows]


def test_conditional_parameter_only_when_its_condition_holds(plan, hookforge_cli, hookforge_tmp):
    result = hookforge_cli("search", "-c", plan({"n_trials": 8, "space": SPACE,
                                                 "sampler": {"name": "random"}}))
    assert result.returncode == 0, result.stderr
    rows = trials(hookforge_tmp / STUDY / "search")
    assert {t["params"]["model.metric"] for t in rows} == {"euclidean", "manhattan"}
    for row in rows:
        assert ("model.standardize" in row["params"]) == (row["params"]["model.metric"] == "manhattan")


def test_four_stage_plan_narrows_refits_and_skips_finished_stages(plan, hookforge_cli, hookforge_tmp):
    config = plan({"n_trials": 4, "space": SPACE, "stages": {
        "sanity": {"n_trials": 2, "overrides": {"data.split.val": 0.3}},
        "coarse": {"n_trials": 5},
        "fine": {"n_trials": 3, "narrow_from": "coarse", "top_k": 2},
        "refit": {"kind": "refit", "from_stage": "fine", "seeds": [1, 2, 3]}}})
    early = hookforge_cli("search", "-c", config, "--stage", "fine")
    assert early.returncode == 2
    assert "narrows the space around stage 'coarse', which has not finished" in early.stderr

    result = hookforge_cli("search", "-c", config)
    assert result.returncode == 0, result.stderr
    study = hookforge_tmp / STUDY
    assert [len(trials(study / s)) for s in ("sanity", "coarse", "fine", "refit")] == [2, 5, 3, 3]
    coarse_top = sorted((t for t in trials(study / "coarse")), key=lambda t: -t["value"])[:2]
    narrowed = json.loads((study / "fine" / "space.json").read_text())
    temperatures = [t["params"]["model.temperature"] for t in coarse_top]
    assert 0.05 <= narrowed["model.temperature"]["low"] <= min(temperatures)
    assert max(temperatures) <= narrowed["model.temperature"]["high"] <= 5.0
    assert set(narrowed["model.metric"]["choices"]) == {t["params"]["model.metric"] for t in coarse_top}
    for row in trials(study / "fine"):
        assert narrowed["model.temperature"]["low"] <= row["params"]["model.temperature"] \
            <= narrowed["model.temperature"]["high"]
    refit = json.loads((study / "refit" / "summary.json").read_text())
    assert refit["seeds"] == [1, 2, 3] and len(refit["runs"]) == 3
    for key in ("val/accuracy", "test/accuracy"):
        stats = refit["stats"][key]
        assert stats["n"] == 3 and stats["ci_low"] <= stats["mean"] <= stats["ci_high"]
        assert 0 <= stats["ci_low"] and stats["ci_high"] <= 1  # a bounded metric's interval
    seeds = {json.loads((Path(r["run_dir"]) / "run.json").read_text())["seed"] for r in refit["runs"]}
    assert seeds == {1, 2, 3}
    # each stage draws from its own derived seed: coarse does not replay sanity's configurations
    first = [t["params"] for t in trials(study / "sanity")]
    assert first != [t["params"] for t in trials(study / "coarse")][:2]
    # trials are scored on val only; the refit, which reports the final numbers, on test too
    assert all(not any(k.startswith("test/") for k in t["metrics"]) for t in trials(study / "coarse"))
    assert "stage coarse: 5 complete; best" in result.stdout and "stage refit:" in result.stdout
    assert "stage fine: trial 3/3" in result.stderr  # progress lines

    again = hookforge_cli("search", "-c", config)
    assert again.returncode == 0
    assert again.stderr.count("already complete") == 4
    assert len(trials(study / "coarse")) == 5


def test_a_narrowing_stage_continues_the_earlier_stages_search(plan, hookforge_cli, hookforge_tmp):
    """Spaces and overrides given per stage (one model family per stage): `fine` names only the
    stage it narrows, and searches that stage's space with its overrides under its own."""
    import yaml

    config = plan({"n_trials": 3, "stages": {
        "coarse": {"space": SPACE, "overrides": {"data.split.val": 0.3, "data.split.test": 0.2}},
        "fine": {"n_trials": 2, "narrow_from": "coarse", "top_k": 2,
                 "overrides": {"data.split.test": 0.1}}}})
    result = hookforge_cli("search", "-c", config)
    assert result.returncode == 0, result.stderr
    study = hookforge_tmp / STUDY
    assert set(json.loads((study / "fine" / "space.json").read_text())) == set(SPACE)
    for row in trials(study / "fine"):
        assert "model.temperature" in row["params"]
        split = yaml.safe_load((Path(row["run_dir"]) / "config.yaml").read_text())["data"]["split"]
        assert (split["val"], split["test"]) == (0.3, 0.1)  # coarse's override, then fine's own


def test_pruned_trials_are_recorded_as_pruned(plan, hookforge_cli, hookforge_tmp):
    config = plan({
        # sampler seed 3: the first draw is the good rate, then bad ones that can be pruned
        "n_trials": 6, "sampler": {"name": "random", "seed": 3},
        "pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
        "space": {"loop.optimizer.lr": {"type": "categorical", "choices": [0.05, 1.0e-7]}}},
        model={"name": "mlp", "hidden": [16]},
        loop={"name": "supervised", "epochs": 3, "batch_size": 32, "device": "cpu"},
        trackers=["local", {"name": "mlflow", "tracking_uri": "sqlite:///hpo.db"}])
    result = hookforge_cli("search", "-c", config)
    assert result.returncode == 0, result.stderr
    rows = trials(hookforge_tmp / STUDY / "search")
    pruned = [t for t in rows if t["state"] == "pruned"]
    assert pruned, rows
    for row in pruned:
        assert row["params"]["loop.optimizer.lr"] == 1.0e-7
        info = json.loads((Path(row["run_dir"]) / "run.json").read_text())
        assert info["stop_reason"] == "pruned" and info["status"] == "finished"
        events = (Path(row["run_dir"]) / "events.jsonl").read_text()
        assert '"reason": "pruned"' in events
        from mlflow import MlflowClient

        run_id = json.loads((Path(row["run_dir"]) / "trackers" / "mlflow.json").read_text())["run_id"]
        tags = MlflowClient("sqlite:///" + str(hookforge_tmp / "hpo.db")).get_run(run_id).data.tags
        assert tags["hookforge.stop_reason"] == "pruned"


def test_multi_objective_reports_the_pareto_front(plan, hookforge_cli, hookforge_tmp):
    """Quality against speed, as the issue's example: F1 up, the latency evaluator's ms per row
    down (its direction inferred from the name)."""
    result = hookforge_cli("search", "-c", plan(
        {"n_trials": 5, "space": SPACE, "metric": ["val/f1_macro", "val/latency_ms"]},
        evaluators=["classification", {"name": "latency", "rows": 16}]))
    assert result.returncode == 0, result.stderr
    summary = json.loads((hookforge_tmp / STUDY / "search" / "summary.json").read_text())
    assert summary["directions"] == ["maximize", "minimize"] and summary["best"]
    assert all(isinstance(b["value"], list) and b["value"][1] > 0 for b in summary["best"])
    assert (hookforge_tmp / STUDY / "search" / "pareto_front.png").exists()
    header = next(line for line in result.stdout.splitlines() if "val/f1_macro" in line)
    assert "val/latency_ms" in header  # one column per objective
    values = {tuple(t["value"]) for t in trials(hookforge_tmp / STUDY / "search")}
    front = {tuple(b["value"]) for b in summary["best"]}
    for f1, ms in front:  # nothing else is at least as good on both and better on one
        assert not any(o_f1 >= f1 and o_ms <= ms and (o_f1, o_ms) != (f1, ms) for o_f1, o_ms in values)


@pytest.mark.parametrize("searcher, message", [
    ({"space": {"model.temperature": {"type": "uniform", "low": 2, "high": 1}}}, "bounds are inverted"),
    ({"space": {"model.metric": {"type": "categorical", "choices": []}}}, "needs at least one choice"),
    ({"space": {"model.temprature": {"type": "uniform", "low": 1, "high": 2}}},
     "'model.temprature' is not a config key (did you mean 'model.temperature'?)"),
    ({"space": {"model.temperature": {"type": "loguniform", "low": 0, "high": 2}}}, "needs low > 0"),
    ({"stages": {"refit": {"kind": "refit"}}}, "needs from_stage"),
    ({"space": SPACE, "stages": {"a_fine": {"narrow_from": "b_coarse"}, "b_coarse": {}}},
     "invalid 'searcher': stage 'a_fine' refers to 'b_coarse', which is not an earlier stage"),
])
def test_bad_spaces_fail_before_any_trial(searcher, message, plan, hookforge_cli, hookforge_tmp):
    result = hookforge_cli("search", "-c", plan({"n_trials": 2, **searcher}))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert "{" not in result.stderr  # the message, not a dump of the section
    assert not (hookforge_tmp / STUDY / "search" / "trials").exists()


def test_unknown_objective_metric_fails_on_the_first_trial(plan, hookforge_cli, hookforge_tmp):
    result = hookforge_cli("search", "-c", plan({"n_trials": 5, "space": SPACE,
                                                 "metric": "val/acuracy"}))
    assert result.returncode == 2
    assert "objective metric 'val/acuracy' was never logged" in result.stderr
    assert "did you mean 'val/accuracy'" in result.stderr
    assert len(list((hookforge_tmp / STUDY / "search" / "trials").iterdir())) == 1


def test_unreachable_storage_is_a_clear_error(plan, hookforge_cli):
    result = hookforge_cli("search", "-c", plan({"n_trials": 2, "space": SPACE}),
                           "--storage", "postgresql://hookforge:secret@127.0.0.1:1/nowhere")
    assert result.returncode == 2
    assert "cannot open the study storage postgresql://hookforge:***REDACTED***@127.0.0.1:1" \
        in result.stderr
    assert "secret" not in result.stderr


def test_unknown_stage(plan, hookforge_cli):
    result = hookforge_cli("search", "-c", plan({"space": SPACE, "stages": {"coarse": {}}}),
                           "--stage", "corse")
    assert result.returncode == 2 and "did you mean 'coarse'" in result.stderr


def test_two_workers_share_a_journal_storage(plan, hookforge_cli, hookforge_tmp, slow_env):
    result = hookforge_cli("search", "-c", plan({"n_trials": 6, "space": SPACE}, model={"name": "slow"}),
                           "--workers", "2", env=slow_env)
    assert result.returncode == 0, result.stderr
    rows = trials(hookforge_tmp / STUDY / "search")
    assert (hookforge_tmp / STUDY / "journal.log").exists()
    complete = [t for t in rows if t["state"] == "complete"]
    assert 6 <= len(complete) <= 7  # workers ask concurrently: at most one extra trial each
    assert len({t["number"] for t in rows}) == len(rows)
    pids = {json.loads((Path(t["run_dir"]) / "run.json").read_text())["pid"] for t in complete}
    assert len(pids) == 2


def test_killed_search_resumes_without_losing_or_repeating_trials(plan, hookforge_tmp):
    config = plan({"n_trials": 6, "space": {
                      "model.dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
                      "loop.optimizer.lr": {"type": "loguniform", "low": 1.0e-3, "high": 0.1}}},
                  model={"name": "mlp", "hidden": [16]},
                  loop={"name": "supervised", "epochs": 4, "batch_size": 16, "device": "cpu"})
    env = {**os.environ, "HOOKFORGE_PROGRESS": "0"}
    command = [sys.executable, "-m", "hookforge", "search", "-c", config]
    process = subprocess.Popen(command, cwd=hookforge_tmp, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    trials_dir = hookforge_tmp / STUDY / "search" / "trials"
    deadline = time.time() + 180
    while time.time() < deadline:  # kill it while its third (or a later) trial runs
        assert process.poll() is None, "the search ended before it could be killed"
        started = sorted(trials_dir.iterdir()) if trials_dir.exists() else []
        if len(started) >= 3 and _status(started[-1]) == "running":
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # the kill may land between a trial's directory and its run.json: such a trial never started
    finished_before = {p.name for p in trials_dir.iterdir() if (p / "run.json").exists()
                       and json.loads((p / "run.json").read_text()).get("status") == "finished"}
    rerun = subprocess.run(command, cwd=hookforge_tmp, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "left running by a stopped process; marked failed" in rerun.stderr
    rows = trials(hookforge_tmp / STUDY / "search")
    states = [t["state"] for t in rows]
    assert states.count("complete") == 6 and states.count("failed") == 1
    assert len({t["number"] for t in rows}) == len(rows)
    for name in finished_before:  # finished trials were kept, not run again
        info = json.loads((trials_dir / name / "run.json").read_text())
        assert info["status"] == "finished" and "resumes" not in info


def test_search_stopped_while_writing_outputs_is_not_complete(plan, hookforge_tmp, monkeypatch):
    import hookforge_optuna.study

    import hookforge

    config = plan({"n_trials": 3, "space": SPACE})

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(hookforge_optuna.study, "draw_plots", stopped)
        with pytest.raises(KeyboardInterrupt):
            hookforge.tune(config)
    stage = hookforge_tmp / STUDY / "search"
    assert len(trials(stage)) == 3 and not (stage / "summary.json").exists()

    result = hookforge.tune(config)  # redoes the outputs; the 3 trials are in the storage
    assert [t.number for t in result.trials] == [0, 1, 2]
    assert json.loads((stage / "summary.json").read_text())["status"] == "complete"
    assert (stage / "optimization_history.png").exists()


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "run.json").read_text()).get("status")
    except (OSError, ValueError):  # not written yet, or replaced while being read
        return None


@pytest.mark.parametrize("sampler", ["cmaes", "grid"])
def test_other_samplers(sampler, plan, hookforge_cli, hookforge_tmp):
    space = {"model.temperature": {"type": "uniform", "low": 0.1, "high": 3.0}} if sampler == "cmaes" \
        else {"model.metric": {"type": "categorical", "choices": ["euclidean", "manhattan"]}}
    result = hookforge_cli("search", "-c", plan({"n_trials": 2, "space": space,
                                                 "sampler": {"name": sampler, "n_startup_trials": 1}}))
    assert result.returncode == 0, result.stderr
    rows = trials(hookforge_tmp / STUDY / "search")
    assert len(rows) == 2 and {r["state"] for r in rows} == {"complete"}
    if sampler == "grid":
        assert {r["params"]["model.metric"] for r in rows} == {"euclidean", "manhattan"}


def test_bounded_intervals_stay_inside_their_bounds():
    import numpy as np
    from hookforge_optuna.study import seed_interval

    two = seed_interval(np.array([0.71, 0.99]), 0.95, bounded=True)
    assert 0 < two["ci_low"] < two["mean"] < two["ci_high"] < 1
    assert two["method"] == "t on the logit scale"
    plain = seed_interval(np.array([0.71, 0.99]), 0.95, bounded=False)
    assert plain["ci_high"] > 1 and plain["method"] == "t"  # why the bounded one exists
    same = seed_interval(np.array([1.0, 1.0]), 0.95, bounded=True)
    assert same["ci_low"] == same["ci_high"] == 1.0


def test_a_trial_killed_before_its_owner_was_recorded_is_failed_and_replaced(plan, hookforge_cli,
                                                                             hookforge_tmp):
    import optuna

    config = plan({"n_trials": 3, "space": SPACE})
    (hookforge_tmp / STUDY).mkdir(parents=True)
    storage = f"sqlite:///{hookforge_tmp / STUDY / 'study.db'}"  # the default storage
    study = optuna.create_study(storage=storage, study_name="hpo.search", direction="maximize")
    study.ask()  # created, and the process died before it recorded its owner
    result = hookforge_cli("search", "-c", config)
    assert result.returncode == 0, result.stderr
    assert "trial 0 of hpo.search was left running by a stopped process" in result.stderr
    states = [t.state for t in optuna.load_study(study_name="hpo.search", storage=storage).trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    assert optuna.trial.TrialState.RUNNING not in states
