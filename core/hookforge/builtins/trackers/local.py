"""The ``local`` tracker: writes the run record's append-only logs (metrics.csv, events.jsonl) and
the metric figures. It is always on and runs before every other tracker (``tryfirst``), so the
local record is complete whatever happens to the others; ``hookforge sync`` replays it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import Field

from hookforge.components import ComponentConfig, Tracker
from hookforge.markers import hookimpl
from hookforge.record import METRICS_HEADER, RunRecord, format_metric_row
from hookforge.types import CheckpointInfo, EpochResult, _json_default

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.run import Run


class LocalTracker(Tracker):
    """The run record on local disk."""

    critical = True  # the record is the source of truth: its failures must not pass silently

    class Config(ComponentConfig):
        figures: bool = Field(True, description="draw a PNG per metric series at the end of the run")
        flush_rows: int = Field(2000, ge=1, description="buffer this many metric rows before writing")

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        self.record: RunRecord | None = None
        self._metrics: TextIO | None = None
        self._events: TextIO | None = None
        self._rows: list[str] = []

    # -- files -----------------------------------------------------------------------------------
    def _attach(self, run: Any) -> RunRecord:
        if self.record is None or self.record.path != run.record.path:
            self.close()
            self.record = run.record
        return self.record  # type: ignore[return-value]

    def _metrics_file(self) -> TextIO:
        if self._metrics is None:
            path = self.record.metrics_file  # type: ignore[union-attr]
            new = not path.exists() or path.stat().st_size == 0
            self._metrics = open(path, "a", encoding="utf-8", newline="")
            if new:
                self._metrics.write(",".join(METRICS_HEADER) + "\n")
        return self._metrics

    def write_event(self, event: str, payload: dict[str, Any]) -> None:
        if self._events is None:
            self._events = open(self.record.events_file, "a", encoding="utf-8")  # type: ignore[union-attr]
        line = {"event": event, "time": datetime.now().astimezone().isoformat(timespec="milliseconds"),
                **payload}
        self._events.write(json.dumps(line, default=_json_default) + "\n")
        self.flush()  # events mark the moments worth being durable (epoch ends, checkpoints)

    def flush(self) -> None:
        if self._rows:
            handle = self._metrics_file()
            handle.write("\n".join(self._rows) + "\n")
            self._rows.clear()
        for handle in (self._metrics, self._events):
            if handle is not None:
                handle.flush()

    def close(self) -> None:
        if self.record is not None:
            self.flush()
        for handle in (self._metrics, self._events):
            if handle is not None:
                handle.close()
        self._metrics = self._events = None

    # -- hooks (tryfirst: the local record is written before any other tracker sees a value) --
    @hookimpl(tryfirst=True)
    def hookforge_run_start(self, run: Run) -> None:
        self._attach(run)
        self.write_event("run_start", {"run_id": run.run_id, "name": run.name,
                                       "resumed": run.resumed})

    @hookimpl(tryfirst=True)
    def hookforge_log_params(self, params: dict[str, Any]) -> None:
        pass  # config.yaml already holds them

    @hookimpl(tryfirst=True)
    def hookforge_log_metrics(self, run: Run, metrics: dict[str, float], step: int,
                              epoch: int | None, split: str) -> None:
        if self.record is None:
            self._attach(run)
        rows = self._rows
        for name, value in metrics.items():
            rows.append(format_metric_row(step, epoch, split, name, value))
        if len(rows) >= self.config.flush_rows:
            self.flush()

    @hookimpl(tryfirst=True)
    def hookforge_log_artifact(self, path: Path, kind: str) -> None:
        pass  # artifacts already live in the run directory

    @hookimpl(tryfirst=True)
    def hookforge_log_event(self, run: Run, event: str, payload: dict[str, Any]) -> None:
        self._attach(run)
        self.write_event(event, payload)

    @hookimpl(tryfirst=True)
    def hookforge_after_epoch(self, run: Run, result: EpochResult) -> None:
        self._attach(run)
        self.write_event("epoch_end", {"epoch": result.epoch, "step": result.step,
                                       "metrics": result.metrics, "duration_s": result.duration_s})

    @hookimpl(tryfirst=True)
    def hookforge_on_checkpoint(self, run: Run, checkpoint: CheckpointInfo) -> None:
        self._attach(run)
        self.write_event("checkpoint", {"tag": checkpoint.tag, "epoch": checkpoint.epoch,
                                        "step": checkpoint.step, "metric": checkpoint.metric,
                                        "path": str(checkpoint.path.relative_to(run.dir))})

    @hookimpl(tryfirst=True)
    def hookforge_on_exception(self, run: Run, error: BaseException) -> None:
        self._attach(run)
        self.write_event("exception", {"type": type(error).__name__, "message": str(error)})

    @hookimpl(tryfirst=True)
    def hookforge_run_end(self, run: Run, status: str) -> None:
        self._attach(run)
        self.write_event("run_end", {"status": status})
        self.close()

    # -- figures and sync ------------------------------------------------------------------------
    def draw_figures(self, run: Run) -> list[Path]:
        """metric_<name>.png for every logged series (called by the run before it ends)."""
        if not self.config.figures or not run.figures or run.record is None:
            return []
        self.flush()
        from hookforge.figures import family_due, plot_metric_series

        losses, others = family_due(run, "losses"), family_due(run, "metrics")
        rows = [row for row in run.record.read_metrics()
                if (losses if "loss" in row["name"] else others)]
        return plot_metric_series(rows, run.figures_dir, run.name) if rows else []

    def sync(self, record: Any) -> str:
        return "the local record is the source every other tracker syncs from; nothing to do"
