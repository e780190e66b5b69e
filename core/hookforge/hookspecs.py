"""Every hook hookforge calls, in one place.

A run owns one pluggy ``PluginManager``. The components selected by name in the config (one data
source, one model, one loop), every tracker and evaluator, and the installed hook-only plugins
(entry-point group ``hookforge.plugins``) are registered on it; the core calls ``run.hook.<name>(...)``.

Two kinds of hook live here:

* **first result** hooks (``firstresult=True``) are answered by the one selected component of a kind:
  selection happens by name through entry points, never by "whoever answers first". Other plugins
  extend them with ``@hookimpl(wrapper=True)`` (e.g. wrap ``hookforge_build_model`` to add LoRA).
* **broadcast** hooks are called on every plugin that implements them: trackers, evaluators and
  lifecycle observers. Their return values are ignored unless the docstring says otherwise.

Every argument is passed by keyword; implement only the arguments you need. Context objects
(``run``, :mod:`hookforge.types`) carry the details, so a hook can gain fields without breaking
plugins. Per-step work is expensive at scale: ``hookforge_after_step`` is called every
``run.log_every_n_steps`` steps with aggregated values, never once per optimizer step.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hookforge.markers import hookspec

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    from hookforge.components import Model
    from hookforge.run import Run
    from hookforge.search import SearchSession
    from hookforge.types import (
        CheckpointInfo,
        Dataset,
        EpochResult,
        FitResult,
        Predictions,
        SearchResult,
        StepResult,
        TrialResult,
    )


# ---------------------------------------------------------------------------------------------
# Run lifecycle: observers of the whole run
# ---------------------------------------------------------------------------------------------


@hookspec
def hookforge_run_start(run: Run) -> None:
    """Called once when a run starts (or resumes), after its directory and config.yaml exist and
    before any data is loaded. Trackers open their run here. ``run.resumed`` tells a resume apart.
    Broadcast."""


@hookspec
def hookforge_run_end(run: Run, status: str) -> None:
    """Called once when a run ends, whatever happened. ``status`` is ``finished``, ``failed`` or
    ``interrupted``. Trackers flush and close here (Lightning's ``finalize(status)``). Broadcast."""


@hookspec
def hookforge_on_exception(run: Run, error: BaseException) -> None:
    """Called when the run fails or is interrupted, before ``hookforge_run_end``, with the exception.
    Broadcast; an exception raised here is reported as a warning and does not hide ``error``."""


@hookspec
def hookforge_log_event(run: Run, event: str, payload: dict[str, Any]) -> None:
    """Called for a lifecycle event that has no hook of its own (``data_loaded``, ``model_built``,
    ``evaluation``, ``resume``...) and for events plugins emit with ``run.emit(event, **payload)``.
    The local tracker appends each to events.jsonl. Broadcast."""


# ---------------------------------------------------------------------------------------------
# Data sources
# ---------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def hookforge_load_data(run: Run) -> Dataset:
    """Called once per run, after ``hookforge_run_start``, on the selected data source. Returns the
    :class:`~hookforge.types.Dataset` with its splits (train, val, test where configured).
    First result wins."""


@hookspec(firstresult=True)
def hookforge_read_inputs(run: Run, path: Path) -> Any:
    """Called by ``hookforge predict`` on the data source that trained the run: reads ``path`` into
    model inputs with the columns and preprocessing of training (``run.dataset_info`` is set).
    First result wins."""


@hookspec
def hookforge_after_data(run: Run, dataset: Dataset) -> None:
    """Called after the data is loaded and split, before the model is built. Observers may inspect
    (not replace) the dataset. Broadcast."""


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def hookforge_build_model(run: Run, dataset: Dataset) -> Model:
    """Called once per run on the selected model, after the data is loaded. Returns the built
    :class:`~hookforge.components.Model`. First result wins; wrap it
    (``@hookimpl(wrapper=True)``) to change the built model, e.g. to add LoRA adapters."""


@hookspec(firstresult=True)
def hookforge_load_model(run: Run, path: Path) -> Model:
    """Called by ``evaluate``, ``predict`` and resume to rebuild the model from the checkpoint
    directory ``path`` (``run.dataset_info`` is set). First result wins."""


@hookspec(firstresult=True)
def hookforge_predict(run: Run, model: Model, inputs: Any) -> Predictions:
    """Called to predict on one split's inputs or on a predict input file. Returns
    :class:`~hookforge.types.Predictions`. First result wins."""


# ---------------------------------------------------------------------------------------------
# Loops: how a model is trained
# ---------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def hookforge_fit(run: Run, model: Model, dataset: Dataset) -> FitResult:
    """Called once per run on the selected loop to train ``model``. Whatever the loop does
    (minibatches, two optimizers, environment rollouts, boosting rounds) it reports the same way:
    ``run.log_metrics`` for values, ``run.end_epoch`` after each unit of progress (feeds early
    stopping, pruning and trackers), ``run.save_checkpoint`` for checkpoints, and it stops early
    when ``run.should_stop`` becomes true. Returns a :class:`~hookforge.types.FitResult` and leaves
    the model in its best state. First result wins."""


@hookspec
def hookforge_before_fit(run: Run, model: Model, dataset: Dataset) -> None:
    """Called just before ``hookforge_fit``. Broadcast."""


@hookspec
def hookforge_after_fit(run: Run, model: Model, result: FitResult) -> None:
    """Called after ``hookforge_fit`` returned, before the final evaluation. Broadcast."""


@hookspec
def hookforge_before_epoch(run: Run, epoch: int) -> None:
    """Called by loops at the start of each epoch (or round, or iteration). Broadcast."""


@hookspec
def hookforge_after_epoch(run: Run, result: EpochResult) -> None:
    """Called by ``run.end_epoch`` after each epoch (or round, or iteration) with its metrics, keys
    ``split/name``. Pruners and early stopping read the intermediate values here and may call
    ``run.request_stop(reason)``. Broadcast."""


@hookspec
def hookforge_after_step(run: Run, result: StepResult) -> None:
    """Called every ``run.log_every_n_steps`` optimizer steps with values aggregated over the
    window (never per step, and never forcing a device sync). Broadcast."""


@hookspec
def hookforge_on_checkpoint(run: Run, checkpoint: CheckpointInfo) -> None:
    """Called after a checkpoint was written atomically to ``checkpoint.path``. Broadcast."""


# ---------------------------------------------------------------------------------------------
# Experiment trackers
# ---------------------------------------------------------------------------------------------


@hookspec
def hookforge_log_params(run: Run, params: dict[str, Any]) -> None:
    """Called once per run, after ``hookforge_run_start``, with the flattened resolved config
    (dotted keys, secrets redacted). Broadcast."""


@hookspec
def hookforge_log_metrics(
    run: Run, metrics: dict[str, float], step: int, epoch: int | None, split: str
) -> None:
    """Called with metric values of one ``split`` (``train``, ``val``, ``test``) at ``step``. The
    local tracker writes them to metrics.csv first (``tryfirst``); other trackers mirror them.
    Broadcast."""


@hookspec
def hookforge_log_artifact(run: Run, path: Path, kind: str) -> None:
    """Called when a file of the run record is ready to mirror: ``kind`` is ``config``,
    ``evaluation``, ``figure``, ``checkpoint`` or ``model``. At the end of a run the config,
    evaluation and checkpoint come first, then the figures once they are drawn. Broadcast."""


# ---------------------------------------------------------------------------------------------
# Evaluators
# ---------------------------------------------------------------------------------------------


@hookspec
def hookforge_evaluate(run: Run, split: str, predictions: Predictions,
                       final: bool) -> dict[str, float]:
    """Called on every evaluator for each split the run evaluates: with ``final=True`` for the
    record (evaluation.json; draw figures into ``run.figures_dir`` then) and with ``final=False``
    when a loop scores the val split during training (``run.score``; keep it cheap). Each returns
    a dict of metrics; the core merges them. Broadcast, results merged."""


# ---------------------------------------------------------------------------------------------
# Hyper-parameter searchers
# ---------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def hookforge_search(session: SearchSession) -> SearchResult:
    """Called by ``hookforge search`` on the selected searcher. It runs trials with
    ``session.run_trial(overrides)`` and returns a :class:`~hookforge.types.SearchResult`.
    First result wins."""


@hookspec
def hookforge_after_trial(session: SearchSession, trial: TrialResult) -> None:
    """Called after each trial of a search ended (complete, pruned or failed). Broadcast."""


@hookspec
def hookforge_after_search(session: SearchSession, result: SearchResult) -> None:
    """Called once after the searcher returned, with its result (every stage it ran is in
    ``result.extra["stages"]`` for a staged plan); study-level trackers close their parent runs
    here. Broadcast."""
