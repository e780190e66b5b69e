"""A run: one validated config, one plugin manager, one run record.

``Run`` wires the selected components together through the hooks and writes the record. Loops
talk to it with a handful of methods (``log_metrics``, ``end_epoch``, ``report_steps``,
``save_checkpoint``, ``request_stop``), which is what lets very different loops report progress,
metrics, pruning values and checkpoints the same way.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hookforge import hookspecs, registry
from hookforge.components import Component, Model
from hookforge.config import ResolvedConfig, flatten, load_config, redact, resolve
from hookforge.config.loader import apply_overrides
from hookforge.config.secrets import REDACTED, redact_argv
from hookforge.errors import (
    CheckpointError,
    ConfigError,
    PluginError,
    RunInterrupted,
    UsageError,
)
from hookforge.markers import PluginManager
from hookforge.record import (
    RunRecord,
    environment_versions,
    git_commit,
    pid_alive,
    verify_checkpoint,
)
from hookforge.types import (
    CheckpointInfo,
    Dataset,
    DatasetInfo,
    EpochResult,
    FitResult,
    Predictions,
    StepResult,
)

log = logging.getLogger("hookforge")

KEY_LIBRARIES = ["python", "numpy", "pandas", "scikit-learn", "scipy", "pydantic", "pluggy",
                 "torch", "transformers", "peft", "lightgbm", "xgboost", "optuna", "mlflow",
                 "comet_ml", "gymnasium", "safetensors", "skops"]
DEFAULT_EVALUATORS = {"classification": "classification", "multilabel": "classification",
                      "regression": "regression", "language_modeling": "perplexity",
                      "generation": "tasks", "retrieval": "retrieval", "preference": "preference"}


@dataclass
class RunResult:
    """What :meth:`Run.fit` returns."""

    run_dir: Path | None  # None on the non-primary processes of a distributed run
    status: str
    evaluation: dict[str, dict[str, Any]] = field(default_factory=dict)
    fit: FitResult | None = None

    def metric(self, key: str) -> float | None:
        """``val/accuracy`` -> the value from evaluation.json, if present."""
        split, _, name = key.partition("/")
        value = self.evaluation.get(split, {}).get(name)
        return float(value) if isinstance(value, (int, float)) else None


class Run:
    """A training run. Build one with :meth:`from_config` (or :meth:`resume`, :meth:`open`), then
    :meth:`fit`. ``run.hook.<name>(...)`` calls any hook on the run's plugins directly."""

    def __init__(self, config: ResolvedConfig, *, run_dir: str | Path | None = None,
                 record: RunRecord | None = None, plugins: Iterable[object] = (),
                 command: list[str] | None = None, parent: dict[str, Any] | None = None,
                 evaluate_splits: Iterable[str] = ("val", "test")) -> None:
        self.config = config
        self.evaluate_splits = tuple(evaluate_splits)  # what the final evaluation scores
        self.name = config.run.name
        self.seed = config.run.seed
        self.log_every_n_steps = config.run.log_every_n_steps
        self.parent = parent
        self.figures = config.run.figures if config.run.figures is not None else parent is None
        self.command = list(command) if command is not None else list(sys.argv)
        self._run_dir = run_dir
        self.record = record
        self.resumed = False
        self.resume_from: CheckpointInfo | None = None
        self.run_id = uuid.uuid4().hex
        self.status = "created"
        self.should_stop = False
        self.stop_reason: str | None = None
        self.dataset: Dataset | None = None
        self.dataset_info: DatasetInfo | None = None
        self.state: dict[str, Any] = {}  # loops keep what they need between hooks here
        self._console_log = ConsoleLog(None)  # train.log, once the run has a directory
        self._system: Any = None  # the SystemMonitor while the run is open
        self._last_step = 0
        # Under torchrun every process builds the run; only rank 0 writes the record and talks to
        # trackers and hook-only plugins (the others train, and validate to stay in step).
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.primary = self.rank == 0

        self.pm = PluginManager()
        self.pm.add_hookspecs(hookspecs)
        self.hook = self.pm.hook
        self.data = self._register(config.data)
        self.model: Any = self._register(config.model)
        self.loop = self._register(config.loop)
        self.trackers = [self._register(spec) for spec in config.trackers] if self.primary else []
        self.evaluators = [self._register(spec) for spec in config.evaluators]
        self.local = next((t for t in self.trackers if t.plugin_name == "local"), None)
        for plugin in _hook_only_plugins() if self.primary else ():
            self.pm.register(plugin)
        for plugin in plugins:
            self.pm.register(plugin)
        if record is not None and record.dataset_file.exists():
            self.dataset_info = DatasetInfo.from_dict(record.read_json("dataset.json"))

    def _register(self, spec: Any) -> Any:
        if spec is None:
            return None
        component = spec.create()
        self.pm.register(component, name=f"{spec.kind}:{spec.name}")
        return component

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: str | Path | dict[str, Any] | ResolvedConfig,
                    overrides: Iterable[str] = (), **options: Any) -> Run:
        """A run from a YAML path, a config dict or a resolved config; ``overrides`` are
        ``KEY=VALUE`` strings. ``options`` go to the constructor (``run_dir``, ``plugins``...)."""
        shortcuts = {k: options.pop(k) for k in ("data", "model", "loop", "trackers", "evaluators")
                     if k in options}
        if not isinstance(config, ResolvedConfig):
            config = load_config(config, list(overrides), **shortcuts)
        return cls(config, **options)

    @classmethod
    def open(cls, run_dir: str | Path, overrides: Iterable[str] = (), **options: Any) -> Run:
        """The run recorded in ``run_dir``, rebuilt from its config.yaml (to evaluate, predict or
        resume it)."""
        record = RunRecord.open(run_dir)
        raw = record.read_config()
        raw = apply_overrides(raw, list(overrides))
        hidden = [k for k, v in flatten(raw).items() if v == REDACTED]
        if hidden:
            raise ConfigError(f"{record.config_file}: the secret '{hidden[0]}' was redacted; pass it "
                              f"again as {hidden[0]}=VALUE (or through its environment variable)")
        config = resolve(raw, source=str(record.config_file))
        return cls(config, record=record, **options)

    @classmethod
    def resume(cls, run_dir: str | Path, overrides: Iterable[str] = (), **options: Any) -> Run:
        """A killed, failed or interrupted run, ready to continue with :meth:`fit`."""
        run = cls.open(run_dir, overrides, **options)
        assert run.record is not None
        info = run.record.info()
        status = info.get("status")
        if status == "finished":
            raise UsageError(f"cannot resume {run_dir}: the run already finished")
        if status == "running" and run.primary and info.get("host") == socket.gethostname() \
                and info.get("pid") not in (None, os.getpid()) and pid_alive(int(info["pid"])):
            raise UsageError(f"cannot resume {run_dir}: it is still running (pid {info['pid']})")
        run.resumed = True
        run.run_id = info.get("run_id", run.run_id)
        return run

    # -- paths ----------------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        if self.record is None:
            raise RuntimeError("the run has no directory yet: call fit() first")
        return self.record.path

    @property
    def figures_dir(self) -> Path:
        path = self.dir / "figures"
        path.mkdir(exist_ok=True)
        return path

    @property
    def checkpoints_dir(self) -> Path:
        return self.dir / "checkpoints"

    def rng(self, purpose: str = "") -> Any:
        """A numpy Generator seeded from ``run.seed`` and ``purpose`` (independent streams)."""
        import numpy as np

        salt = [ord(c) for c in purpose]
        return np.random.default_rng(np.random.SeedSequence([self.seed, *salt]))

    # -- what loops call --------------------------------------------------------------------------
    def log_metrics(self, metrics: dict[str, float], *, step: int, epoch: int | None = None,
                    split: str = "train") -> None:
        """Send metric values of one split to every tracker (the local record first)."""
        self.hook.hookforge_log_metrics(run=self, metrics=metrics, step=step, epoch=epoch,
                                        split=split)

    def report_steps(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        """Aggregated training values every ``log_every_n_steps`` steps: logged as ``train``
        metrics and passed to ``hookforge_after_step``."""
        self.log_metrics(metrics, step=step, epoch=epoch, split="train")
        if self._system is not None and self._system.samples:
            self._log_system(step, epoch)
        self.hook.hookforge_after_step(run=self, result=StepResult(step, epoch, metrics))

    def end_epoch(self, epoch: int, step: int, metrics: dict[str, float],
                  duration_s: float | None = None) -> EpochResult:
        """Log an epoch's (round's, iteration's) ``split/name`` metrics and call
        ``hookforge_after_epoch``; afterwards check ``run.should_stop``."""
        by_split: dict[str, dict[str, float]] = {}
        for key, value in metrics.items():
            split, sep, name = key.partition("/")
            if not sep:
                split, name = "train", key
            by_split.setdefault(split, {})[name] = value
        for split, values in by_split.items():
            self.log_metrics(values, step=step, epoch=epoch, split=split)
        if self._system is not None and self._system.samples:
            self._log_system(step, epoch)
        self._last_step = step
        result = EpochResult(epoch=epoch, step=step, metrics=dict(metrics), duration_s=duration_s)
        self.hook.hookforge_after_epoch(run=self, result=result)
        return result

    def _log_system(self, step: int, epoch: int | None) -> None:
        """The system samples taken since the last reporting point, at this step."""
        assert self._system is not None
        for sample in self._system.drain():
            self.log_metrics(sample, step=step, epoch=epoch, split="system")

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop after the current unit of work (early stopping, pruning)."""
        if not self.should_stop:
            self.should_stop, self.stop_reason = True, reason
            self.emit("stop_requested", reason=reason)

    def save_checkpoint(self, tag: str, fill: Callable[[Path], None] | None = None, *,
                        epoch: int, step: int, metric: float | None = None,
                        extra: dict[str, Any] | None = None,
                        source: Path | None = None) -> CheckpointInfo:
        """Write checkpoint ``tag`` atomically with ``fill(directory)`` (default: the model's
        ``save``), or as a copy of the checkpoint directory ``source``."""
        if fill is None and source is None:
            fill = self.model.save
        if not self.primary:
            return None  # type: ignore[return-value]  # rank 0 writes the checkpoints
        if self.record is None:
            raise RuntimeError("save_checkpoint() needs a started run")
        info = self.record.save_checkpoint(tag, fill, epoch=epoch, step=step, metric=metric,
                                           extra=extra, source=source)
        self.hook.hookforge_on_checkpoint(run=self, checkpoint=info)
        return info

    def emit(self, event: str, **payload: Any) -> None:
        """Record a custom lifecycle event (events.jsonl and every tracker)."""
        self.hook.hookforge_log_event(run=self, event=event, payload=payload)

    # -- the lifecycle ----------------------------------------------------------------------------
    def fit(self) -> RunResult:
        """Load data, build the model, train it with the loop, evaluate val and test, and record
        everything. Exceptions propagate after the run is marked failed or interrupted."""
        if not self.resumed:
            self.preflight()
        self._open()
        self.status = "running"
        status, result, evaluation = "failed", None, {}
        try:
            with _interrupt_on_sigterm():
                self.hook.hookforge_run_start(run=self)
                if not self.resumed:
                    self.hook.hookforge_log_params(run=self, params=self.params())
                dataset = self.load_data()
                model = self.build_model(dataset)
                if self.figures:
                    from hookforge.figures import prewarm

                    # while the model trains (C code that releases the GIL); not while the data
                    # loads, whose own imports and parsing would fight it for the GIL
                    prewarm()
                self.hook.hookforge_before_fit(run=self, model=model, dataset=dataset)
                result = self.hook.hookforge_fit(run=self, model=model, dataset=dataset)
                if result is None:
                    raise PluginError(f"loop '{self.loop.plugin_name}' returned no FitResult")
                self.hook.hookforge_after_fit(run=self, model=model, result=result)
                if self.stop_reason != "pruned" and self.primary:  # pruned: not worth the time
                    splits = [s for s in self.evaluate_splits if s in dataset.splits]
                    evaluation = self.evaluate(splits, model=model, dataset=dataset,
                                               step=result.steps, predictions=result.predictions)
                    from hookforge.summary import evaluation_lines

                    for line in evaluation_lines(evaluation):
                        self._console_log.write(line)
            status = "finished"
        except (KeyboardInterrupt, RunInterrupted) as exc:
            status = "interrupted"
            self._on_exception(exc)
            raise RunInterrupted(f"run interrupted; continue it with `hookforge train --resume "
                                 f"{self.dir}`") from None
        except BaseException as exc:
            self._on_exception(exc)
            if isinstance(exc, OSError) and self.record is not None:
                exc.hookforge_run_dir = str(self.record.path)  # type: ignore[attr-defined]
            raise
        finally:
            self._close(status, result)
        return RunResult(self.record.path if self.record else None, status, evaluation, result)

    def preflight(self) -> None:
        """Every component's :meth:`~hookforge.components.Component.preflight`, before anything
        is written."""
        from hookforge.figures import check_families

        check_families(self)
        for component in (self.data, self.model, self.loop, *self.evaluators):
            if component is not None:
                component.preflight(self)

    def load_data(self) -> Dataset:
        dataset = self.hook.hookforge_load_data(run=self)
        if dataset is None:
            raise PluginError(f"data source '{self.data.plugin_name}' returned no dataset")
        self.dataset, self.dataset_info = dataset, dataset.info
        if self.primary:
            self.record.write_json("dataset.json", dataset.info.to_dict())  # type: ignore[union-attr]
        self._add_default_evaluators(dataset.info.task)
        self.emit("data_loaded", task=dataset.info.task,
                  sizes={name: len(part) for name, part in dataset.splits.items()})
        self.hook.hookforge_after_data(run=self, dataset=dataset)
        return dataset

    def build_model(self, dataset: Dataset) -> Model:
        model = self.hook.hookforge_build_model(run=self, dataset=dataset)
        if model is None:
            raise PluginError(f"model '{self.model.plugin_name}' was not built")
        self.model = model
        self.emit("model_built", model=getattr(model, "plugin_name", type(model).__name__))
        return model

    def load_model(self, tag: str = "best") -> Model:
        """The model from checkpoint ``tag`` (``last`` when no ``best`` exists), hash-checked."""
        assert self.record is not None
        if self.record.checkpoint_dir(tag) is None and tag == "best":
            tag = "last"
        path = self.record.verified_checkpoint(tag)
        if self.dataset_info is None:
            raise CheckpointError(f"{self.dir} has no dataset.json: the run never loaded its data")
        model = self.hook.hookforge_load_model(run=self, path=path)
        if model is None:
            raise PluginError(f"model '{self.model.plugin_name}' could not load {path}")
        self.model = model
        return model

    def evaluate(self, splits: Iterable[str] = ("test",), *, model: Model | None = None,
                 dataset: Dataset | None = None, step: int = 0,
                 predictions: dict[str, Predictions] | None = None) -> dict[str, dict[str, Any]]:
        """Predict each split, run every evaluator, merge their metrics into evaluation.json and
        log them. Without ``model``/``dataset``, loads the best checkpoint and the recorded data;
        ``predictions`` of ``model`` already made for some splits are used as they are."""
        if self.record is None:
            raise UsageError("the run has no record to evaluate; call fit() first")
        if self.status == "created":  # `hookforge evaluate`: the trackers' life cycle as in fit
            return self._evaluate_recorded(list(splits), model, dataset)
        if dataset is None:
            dataset = self.dataset or self.load_data()
        if model is None:
            model = self.load_model()
        self._add_default_evaluators(dataset.info.task)
        results: dict[str, dict[str, Any]] = {}
        try:
            for split in splits:
                results[split] = self._score(model, dataset, split, final=True,
                                             predictions=(predictions or {}).get(split))
        finally:  # one write for every split (a file per trial counts in a search); kept on errors
            if results:
                self.record.merge_evaluations(results)
        for split, metrics in results.items():
            scalars = _scalars(metrics)
            self.log_metrics(scalars, step=step, epoch=None, split=split)
            self.emit("evaluation", split=split, metrics=scalars)
        return results

    def _evaluate_recorded(self, splits: list[str], model: Model | None,
                           dataset: Dataset | None) -> dict[str, dict[str, Any]]:
        """Evaluate a recorded run (finished or not) outside ``fit``: every tracker gets the same
        life cycle as in a run, ``start`` (reopening its run: ``run.resumed`` is True), the
        metrics, then ``finalize`` with the run's recorded status."""
        assert self.record is not None
        recorded = self.record.status
        # what can fail on bad input (no checkpoint, a changed data file) fails before any
        # tracker or the record hears of an evaluation
        dataset = dataset or self.dataset or self.load_data()
        model = model or self.load_model()
        self.resumed, self.status = True, "evaluating"
        self.hook.hookforge_run_start(run=self)
        try:
            return self.evaluate(splits, model=model, dataset=dataset, step=self._final_step())
        finally:
            self.status = recorded
            self.hook.hookforge_run_end(run=self, status=recorded)

    def _final_step(self) -> int:
        """The step the run's training ended at (0 for a run that recorded none)."""
        assert self.record is not None
        return int((self.record.info().get("fit") or {}).get("steps") or 0)

    def score(self, model: Model, dataset: Dataset, split: str = "val",
              predictions: Predictions | None = None) -> dict[str, float]:
        """Scalar metrics of ``model`` on ``split`` from every evaluator, without recording them
        (loops use it for validation during training). Pass ``predictions`` when the loop already
        predicted the split (e.g. while computing the validation loss)."""
        metrics = _scalars(self._score(model, dataset, split, final=False, predictions=predictions))
        metrics.pop("n_samples", None)
        return metrics

    def predict_split(self, model: Model, dataset: Dataset, split: str) -> Predictions:
        """``model``'s predictions of one split of ``dataset`` (through the predict hook)."""
        return self.hook.hookforge_predict(run=self, model=model, inputs=dataset.split(split).X)

    def _score(self, model: Model, dataset: Dataset, split: str, *, final: bool,
               predictions: Predictions | None = None) -> dict[str, Any]:
        part = dataset.split(split)
        if predictions is None:
            predictions = self.predict_split(model, dataset, split)
        predictions.y_true = part.y
        metrics: dict[str, Any] = {}
        for answer in reversed(self.hook.hookforge_evaluate(run=self, split=split,
                                                             predictions=predictions, final=final)):
            metrics.update(answer or {})
        metrics["n_samples"] = len(part)
        return metrics

    def predict(self, input_path: str | Path, output_path: str | Path) -> Path:
        """Read ``input_path`` with the run's data source, predict with the best checkpoint and
        write the predictions (CSV; Parquet for .parquet, JSON lines for .jsonl) atomically."""
        from hookforge.fileio import atomic_write_bytes, check_writable_parent

        output_path = Path(output_path)
        check_writable_parent(output_path, "predict -o")
        frame = self.predictions(input_path)
        if output_path.suffix == ".parquet":
            import io

            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            atomic_write_bytes(output_path, buffer.getvalue())
        elif output_path.suffix in (".jsonl", ".ndjson"):  # e.g. generated completions
            atomic_write_bytes(output_path, frame.to_json(orient="records", lines=True,
                                                          force_ascii=False).encode())
        else:
            atomic_write_bytes(output_path, frame.to_csv(index=False).encode())
        return output_path

    def predictions(self, input_path: str | Path) -> Any:
        """Predictions (a DataFrame: ``prediction``, plus ``prob_<class>`` for classifiers) for
        the rows of a file, read with the run's data source and its checks."""
        input_path = Path(input_path)
        if not input_path.is_file():
            raise UsageError(f"input file not found: {input_path}")
        return self._predict_file(input_path, self.load_model())

    def predict_frame(self, rows: Any, model: Model | None = None) -> Any:
        """Predictions (a DataFrame, as ``predict`` writes them) for rows given in memory as a
        DataFrame: they go through the data source's own reader and checks, via a CSV file.
        Pass ``model`` (from :meth:`load_model`) to predict many batches with one load."""
        import tempfile

        import pandas as pd

        with tempfile.TemporaryDirectory(prefix="hookforge-predict-") as tmp:
            path = Path(tmp) / "inputs.csv"
            pd.DataFrame(rows).to_csv(path, index=False)
            return self._predict_file(path, model or self.load_model())

    def _predict_file(self, path: Path, model: Model) -> Any:
        inputs = self.hook.hookforge_read_inputs(run=self, path=path)
        predictions = self.hook.hookforge_predict(run=self, model=model, inputs=inputs)
        return predictions.to_frame()

    def params(self) -> dict[str, Any]:
        """The flattened resolved config with secrets redacted (what trackers log as params)."""
        return flatten(redact(self.config.to_dict()))

    # -- internals --------------------------------------------------------------------------------
    def _add_default_evaluators(self, task: str) -> None:
        if self.evaluators or task not in DEFAULT_EVALUATORS:
            return
        name = DEFAULT_EVALUATORS[task]
        if name not in registry.names("evaluator"):
            return
        spec = resolve({"evaluators": [name]}, require=()).evaluators[0]
        self.config.evaluators.append(spec)
        self.evaluators.append(self._register(spec))

    def _seed(self) -> None:
        import random

        import numpy as np

        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)

    def _open(self) -> None:
        if not self.primary:
            self._open_secondary()
            return
        if self.record is None:
            self.record = RunRecord.create(self.config.run.output_dir, self.name, self._run_dir)
        elif not self.resumed:
            raise UsageError(f"{self.record.path} already holds a run; use Run.resume() to "
                             f"continue it")
        self._console_log = ConsoleLog(self.record.path / "train.log")
        if self.config.run.system_metrics:
            from hookforge.system_metrics import SystemMonitor

            self._system = SystemMonitor(self.config.run.system_metrics_interval_s)
            self._system.start()
        self._seed()
        now = datetime.now().astimezone().isoformat(timespec="seconds")
        if self.resumed:
            self.resume_from = self._resume_point()
            self.record.truncate_logs(after_step=self.resume_from.step if self.resume_from else -1)
            info = self.record.info()
            self.record.update_info(status="running", pid=os.getpid(), host=socket.gethostname(),
                                    end_time=None, error=None,
                                    resumes=[*info.get("resumes", []),
                                             {"time": now, "command": redact_argv(self.command),
                                              "from_step": self.resume_from.step
                                              if self.resume_from else None}])
            self.emit("resume", from_step=self.resume_from.step if self.resume_from else None)
            return
        self.record.write_config(self.config.to_dict())
        dists = _plugin_distributions()
        versions = {"hookforge": _version()}
        versions.update({name: version for name, version in dists})
        versions.update(environment_versions(KEY_LIBRARIES))
        versions["python"] = sys.version.split()[0]
        self.record.update_info(
            status="running", run_id=self.run_id, name=self.name, start_time=now, end_time=None,
            duration_s=None, pid=os.getpid(), host=socket.gethostname(), seed=self.seed,
            command=redact_argv(self.command), cwd=os.getcwd(), git=git_commit(),
            components=self._components(), versions=versions, parent=self.parent,
            world_size=self.world_size,
        )

    def _resume_point(self) -> CheckpointInfo | None:
        last = self.record.checkpoint_dir("last") if self.record else None
        if last is None:
            return None
        meta = verify_checkpoint(last)
        return CheckpointInfo("last", last, meta["epoch"], meta["step"], meta.get("metric"),
                              meta.get("files", {}))

    def _open_secondary(self) -> None:
        """A non-primary process of a distributed run: seed, and on resume find the checkpoint to
        continue from; never write."""
        self._seed()
        if self.resumed:
            self.resume_from = self._resume_point()

    def _components(self) -> dict[str, Any]:
        c = self.config
        return {"data": c.data and c.data.name, "model": c.model and c.model.name,
                "loop": c.loop and c.loop.name, "trackers": [t.name for t in c.trackers],
                "evaluators": [e.name for e in c.evaluators]}

    def _on_exception(self, exc: BaseException) -> None:
        try:
            self.hook.hookforge_on_exception(run=self, error=exc)
        except Exception as hook_error:  # never hide the original error
            log.warning("hookforge_on_exception failed: %s", hook_error)

    def _close(self, status: str, result: FitResult | None) -> None:
        self.status = status
        if not self.primary:
            self.hook.hookforge_run_end(run=self, status=status)
            return
        exc = sys.exc_info()[1]
        if self._system is not None:
            self._system.stop()
            if self._system.samples:
                self._log_system(result.steps if result else self._last_step, None)
            self._system = None
        # The checkpoint first: a tracker's worker saves and uploads the model (file copies and
        # database commits that release the GIL) while the figures are drawn here.
        self._log_artifacts(figures=False)
        if self.figures:
            from hookforge.figures import wait_for_drawing

            wait_for_drawing()  # the figures drawn while training are all written
        if self.local is not None:
            try:
                self.local.draw_figures(self)
            except Exception as draw_error:
                log.warning("could not draw the metric figures: %s", draw_error)
        self._log_artifacts(figures=True)
        assert self.record is not None
        info = self.record.info()
        end = datetime.now().astimezone()
        start = datetime.fromisoformat(info["start_time"]) if info.get("start_time") else end
        fields: dict[str, Any] = {
            "status": status, "end_time": end.isoformat(timespec="seconds"),
            "duration_s": round((end - start).total_seconds(), 3), "components": self._components(),
            "stop_reason": (result.stop_reason if result else None) or self.stop_reason,
        }
        if status != "finished" and exc is not None:
            fields["error"] = {"type": type(exc).__name__, "message": str(exc)}
        if result is not None:
            fields["fit"] = {"epochs": result.epochs, "steps": result.steps,
                             "best_metric": result.best_metric, "best_epoch": result.best_epoch}
        self.record.update_info(**fields)
        self.hook.hookforge_run_end(run=self, status=status)
        self._console_log.close(f"run {status}: {self.record.path}")

    def _log_artifacts(self, *, figures: bool) -> None:
        """Report the record's figures, or everything else (config, evaluation, checkpoint)."""
        from hookforge.tracking import record_artifacts

        assert self.record is not None
        for kind, path in record_artifacts(self.record):
            if (kind == "figure") != figures:
                continue
            try:
                self.hook.hookforge_log_artifact(run=self, path=path, kind=kind)
            except Exception as artifact_error:
                log.warning("could not log artifact %s: %s", path, artifact_error)


class ConsoleLog:
    """train.log in the run directory: what the ``hookforge`` logger says while the run is
    open (epochs, warnings, resumes), and the final metrics, as the replaced tools kept it.
    Appended to, so a resumed run continues the same file."""

    def __init__(self, path: Path | None) -> None:
        self.handler: logging.Handler | None = None
        if path is None:
            return
        self.handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s",
                                                    "%Y-%m-%d %H:%M:%S"))
        self.handler.setLevel(logging.INFO)
        if log.level == logging.NOTSET or log.level > logging.INFO:
            # the file wants INFO; the console handler (the CLI's) filters by its own level
            log.setLevel(logging.INFO)
        log.addHandler(self.handler)

    def write(self, line: str) -> None:
        if self.handler is not None:
            self.handler.emit(logging.LogRecord("hookforge", logging.INFO, __file__, 0, line,
                                                None, None))

    def close(self, last: str) -> None:
        if self.handler is not None:
            self.write(last)
            log.removeHandler(self.handler)
            self.handler.close()
            self.handler = None


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _plugin_distributions() -> list[tuple[str, str]]:
    return sorted({(e.distribution, e.version) for e in registry.entries() if e.version != "-"})


def _version() -> str:
    from hookforge import __version__

    return __version__


_hook_plugin_cache: list[object] | None = None


def _hook_only_plugins() -> list[object]:
    """Installed hook-only plugins (group ``hookforge.plugins``); one that fails to load warns and
    is skipped (kedro's behaviour)."""
    global _hook_plugin_cache
    if _hook_plugin_cache is not None:
        return _hook_plugin_cache
    plugins: list[object] = []
    for entry in registry.entries("plugin"):
        if entry.disabled:
            continue
        try:
            obj = registry.load("plugin", entry.name)
        except PluginError as exc:
            log.warning("hook-only plugin '%s' skipped: %s", entry.name, exc)
            continue
        if isinstance(obj, type):
            obj = obj()
        plugins.append(obj)
    _hook_plugin_cache = plugins
    return plugins


@contextmanager
def _interrupt_on_sigterm() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C so a terminated run is marked interrupted and resumable."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise RunInterrupted("terminated")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(config: str | Path | dict[str, Any] | ResolvedConfig, overrides: Iterable[str] = (),
          **options: Any) -> RunResult:
    """Build a run and fit it: ``hookforge.train("configs/quickstart.yaml", ["run.seed=7"])``."""
    return Run.from_config(config, overrides, **options).fit()


__all__ = ["Component", "Run", "RunResult", "train"]
