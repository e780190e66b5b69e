"""Meta-tests (datasette-style): every hook is documented, in the spec module and in
docs/hooks.md, and every hook is called by a test; plus the hook mechanics themselves."""

from __future__ import annotations

import inspect
import re
import sys

import pytest
from conftest import IRIS_CSV, PLUGINS_DIR, ROOT

import hookforge
from hookforge import hookspecs

sys.path.insert(0, str(PLUGINS_DIR))
from recorder import Recorder

HOOKS = sorted(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
               if name.startswith("hookforge_"))


def test_there_are_hooks():
    assert len(HOOKS) >= 20


@pytest.mark.parametrize("name", HOOKS)
def test_hook_spec_is_documented(name):
    spec = getattr(hookspecs, name)
    doc = inspect.getdoc(spec) or ""
    assert doc.startswith("Called"), f"{name}: the docstring must say when it is called"
    first_result = spec.hookforge_spec.get("firstresult", False)
    if first_result:
        assert "First result wins" in doc, name
    else:
        assert "Broadcast" in doc, name


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_section_with_an_example_in_the_hook_reference(name):
    text = (ROOT / "docs" / "hooks.md").read_text()
    match = re.search(rf"^## `?{name}`?.*?(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"docs/hooks.md has no section for {name}"
    assert "```python" in match.group(0), f"docs/hooks.md: {name} has no example"


def test_recorder_implements_every_hook():
    implemented = {n for n in dir(Recorder) if n.startswith("hookforge_")}
    assert implemented == set(HOOKS)


def test_every_hook_is_called(hookforge_register, tiny_config):
    """A train, evaluate, predict, a failing run and a grid search call every hook."""
    from hookforge import ComponentConfig, Loop
    from hookforge.config import load_config
    from hookforge.search import SearchSession
    from hookforge.types import FitResult

    sys.path.insert(0, str(PLUGINS_DIR))
    from faulty import Crashing

    class StepLoop(Loop):
        """A loop with steps: reports aggregated steps, an epoch and a checkpoint."""

        class Config(ComponentConfig):
            steps: int = 4

        def fit(self, run, model, dataset):
            run.hook.hookforge_before_epoch(run=run, epoch=0)
            model.fit(run, dataset)
            for step in range(1, self.config.steps + 1):
                if step % run.log_every_n_steps == 0:
                    run.report_steps(step, 0, {"loss": 1.0 / step})
            metrics = {f"val/{k}": v for k, v in run.score(model, dataset, "val").items()}
            run.end_epoch(0, self.config.steps, metrics)
            run.save_checkpoint("best", epoch=0, step=self.config.steps)
            return FitResult(epochs=1, steps=self.config.steps)

    hookforge_register("loop", "steps", StepLoop)
    hookforge_register("model", "crashing", Crashing)
    recorder = Recorder()
    config = tiny_config(data={"name": "csv", "path": str(IRIS_CSV), "target": "species"},
                         model={"name": "centroid"}, loop={"name": "steps"},
                         run={"log_every_n_steps": 2})
    run = hookforge.Run.from_config(config, plugins=[recorder])
    result = run.fit()
    assert result.evaluation["test"]["recorded"] == 1.0  # evaluators' dicts are merged

    reopened = hookforge.Run.open(result.run_dir, plugins=[recorder])
    reopened.evaluate(["test"])
    inputs = result.run_dir / "inputs.csv"
    inputs.write_text(IRIS_CSV.read_text())
    reopened.predict(inputs, result.run_dir / "preds.csv")

    failing = hookforge.Run.from_config({**config, "model": {"name": "crashing"}},
                                        plugins=[recorder])
    with pytest.raises(RuntimeError):
        failing.fit()

    search = load_config(tiny_config(model={"name": "centroid"},
                                     searcher={"name": "grid",
                                               "params": {"model.metric": ["euclidean"]}}))
    SearchSession(search, plugins=[recorder]).search()

    missing = [name for name in HOOKS if recorder.calls[name] == 0]
    assert not missing, f"hooks never called: {missing}"


def test_wrapper_hook_can_change_the_built_model(quickstart):
    """A plugin extends another without editing it (as LoRA wraps model building)."""

    class Colder:
        @hookforge.hookimpl(wrapper=True)
        def hookforge_build_model(self, run, dataset):
            model = yield
            model.config.temperature = 0.25
            return model

    run = hookforge.Run.from_config(quickstart, plugins=[Colder()])
    run.fit()
    assert run.model.config.temperature == 0.25


def test_a_one_shot_fit_shares_its_val_predictions_with_the_evaluation(quickstart):
    """The simple loop scores val after fitting; the run's evaluation reuses those predictions
    (FitResult.predictions) rather than predicting val a second time."""
    from hookforge.testing import PredictionRecorder

    recorder = PredictionRecorder()
    run = hookforge.Run.from_config(quickstart, plugins=[recorder])
    result = run.fit()
    splits = run.dataset.splits
    assert sorted(recorder.sizes) == sorted([len(splits["val"]), len(splits["test"])])
    epoch_val = next(e for e in run.record.read_events() if e["event"] == "epoch_end")["metrics"]
    assert epoch_val["val/accuracy"] == result.evaluation["val"]["accuracy"]


def test_observer_can_stop_the_run_cooperatively(quickstart):
    class Pruner:
        @hookforge.hookimpl
        def hookforge_after_epoch(self, run, result):
            run.request_stop("pruned")

    run = hookforge.Run.from_config(quickstart, plugins=[Pruner()])
    result = run.fit()
    assert run.should_stop and run.stop_reason == "pruned"
    assert result.evaluation == {}  # a pruned run is not worth evaluating
    assert run.record.info()["stop_reason"] == "pruned"


def test_failing_tracker_warns_once_and_training_goes_on(quickstart, hookforge_register, caplog):
    from hookforge import ComponentConfig, Tracker

    class Flaky(Tracker):
        class Config(ComponentConfig):
            pass

        calls = 0

        def log_metrics(self, metrics, step, epoch, split):
            type(self).calls += 1
            raise ConnectionError("server down")

    hookforge_register("tracker", "flaky", Flaky)
    quickstart["trackers"] = ["local", "flaky"]
    with caplog.at_level("WARNING", logger="hookforge"):
        result = hookforge.train(quickstart)
    assert result.status == "finished"
    assert Flaky.calls == 1
    warnings = [r for r in caplog.records if "flaky" in r.getMessage()]
    assert len(warnings) == 2  # the failure, then what it missed at the end
    assert hookforge.RunRecord.open(result.run_dir).read_metrics()  # the local record is whole


def test_hook_called_directly_from_python(quickstart):
    run = hookforge.Run.from_config(quickstart)
    run._open()
    dataset = run.hook.hookforge_load_data(run=run)
    assert dataset.task == "classification" and len(dataset.split("train")) > 0
