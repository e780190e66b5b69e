"""Trackers that never slow training down: :class:`BackgroundTracker` ships from a worker thread.

The hooks run on the training thread and only append an item to a deque (a few hundred
nanoseconds, no lock, no wake-up). A daemon thread wakes every ``flush_interval_s`` (at once for
the run's opening, params, artifacts and end), takes everything queued and calls the subclass's
``open`` / ``send_params`` / ``send_metrics`` (in calls of ``batch_size`` points) /
``send_artifact`` / ``close``.
The first failure is logged once; from then on the tracker stops sending and counts what it could
not send, and ``hookforge sync RUN_DIR --tracker NAME`` replays the local record later. At the end
of the run ``finalize`` waits at most ``flush_timeout_s`` for the queue to drain.

Why a hand-written queue rather than the SDKs' own async modes: MLflow's ``log_batch`` is
synchronous and its async logging still blocks on run creation and does not survive a dead server;
comet has its own thread but not for run creation. One small worker gives every tracker the same
guarantees, tested once. Large, infrequent batches matter: an SDK call holds the GIL, and many
small calls would interleave with every training step. (A worker *process* was tried and measured
slower on 2-core machines: its start-up and its CPU compete with training's own threads.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import Field

from hookforge.components import ComponentConfig, Tracker

log = logging.getLogger("hookforge")


class MetricPoint(NamedTuple):  # a tuple: cheap to create per step and to pickle in batches
    key: str  # split/name
    value: float
    step: int
    epoch: int | None
    timestamp_ms: int


@dataclass
class RunContext:
    """What a background tracker knows of its run, captured on the training thread at start."""

    name: str
    run_id: str
    dir: Path
    resumed: bool = False
    parent: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)  # run.json
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Any, resumed: bool = True) -> RunContext:
        info = record.info()
        return cls(name=info.get("name", record.path.name), run_id=info.get("run_id", ""),
                   dir=record.path, resumed=resumed, parent=info.get("parent"), info=info,
                   tags=(record.read_config().get("run") or {}).get("tags") or {})


class BackgroundTrackerConfig(ComponentConfig):
    flush_timeout_s: float = Field(30.0, ge=0, description="at the end, wait at most this long for "
                                                           "queued records to be sent")
    batch_size: int = Field(1000, ge=1, description="metric points per call")
    flush_interval_s: float = Field(1.0, gt=0, description="send queued metric points at least "
                                                            "this often")



class BackgroundTracker(Tracker):
    """Base class: subclasses implement the ``open``/``send_*``/``close`` methods (worker thread)."""

    Config = BackgroundTrackerConfig

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        # Appended to on the training thread, drained by the worker. A deque with no lock and no
        # wake-up per item: a worker woken for every step (two futex calls, a core taken from
        # training's own threads) cost training ~8 % at 2 reports per 1 ms step.
        self._items: deque[tuple[str, Any]] = deque()
        self._wake = threading.Event()  # set by _put
        self._thread: threading.Thread | None = None
        self.broken: str | None = None  # the first failure, after which nothing more is sent
        self.unsent = 0
        self.context: RunContext | None = None

    # -- what subclasses implement (called on the worker thread, or by sync) --------------------
    def open(self, context: RunContext) -> None:
        """Create (or, when resuming or syncing, find again) the tracker's run."""

    def send_params(self, params: dict[str, Any]) -> None:
        pass

    def send_metrics(self, points: list[MetricPoint]) -> None:
        pass

    def send_artifact(self, path: Path, kind: str) -> None:
        pass

    def send_event(self, event: str, payload: dict[str, Any]) -> None:
        pass

    def close(self, status: str) -> None:
        pass

    def existing_points(self) -> list[tuple[str, int, Any]]:
        """(key, step, value) of every point already stored in the tracker's run (duplicates
        included), so sync adds only the rest; build them with :func:`point_key`."""
        return []

    def tracker_key(self, key: str) -> str:
        """The name a metric key gets in the tracker (some restrict the characters)."""
        return key

    # -- the training-thread side: enqueue only ---------------------------------------------------
    def start(self, run: Any) -> None:
        from hookforge.record import RunRecord

        record = RunRecord(run.dir)
        self.context = RunContext(name=run.name, run_id=run.run_id, dir=run.dir,
                                  resumed=run.resumed, parent=run.parent,
                                  info=record.info() if record.run_file.exists() else {},
                                  tags=dict(run.config.run.tags))
        self._thread = threading.Thread(target=self._work, daemon=True,
                                        name=f"hookforge-{self.plugin_name}")
        self._thread.start()
        self._put("open", self.context)

    def log_params(self, params: dict[str, Any]) -> None:
        self._put("params", params)

    def log_metrics(self, metrics: dict[str, float], step: int, epoch: int | None,
                    split: str) -> None:
        now = int(time.time() * 1000)
        self._items.append(("metrics", [MetricPoint(f"{split}/{k}", float(v), step, epoch, now)
                                        for k, v in metrics.items()]))

    def log_artifact(self, path: Path, kind: str) -> None:
        self._put("artifact", (path, kind))

    def log_event(self, event: str, payload: dict[str, Any]) -> None:
        self._put("event", (event, payload), wake=False)

    def finalize(self, status: str) -> None:
        if self._thread is None:
            return
        self._put("close", status)
        self._thread.join(self.config.flush_timeout_s)
        where = self.context.dir if self.context else "RUN_DIR"
        if self._thread.is_alive():
            log.warning("tracker '%s' did not finish sending within %gs; what is missing can be "
                        "replayed with `hookforge sync %s --tracker %s`", self.plugin_name,
                        self.config.flush_timeout_s, where, self.plugin_name)
        elif self.broken:
            log.warning("tracker '%s' could not send %d records (%s); replay them with "
                        "`hookforge sync %s --tracker %s`", self.plugin_name, self.unsent,
                        self.broken, where, self.plugin_name)

    def _put(self, kind: str, payload: Any, wake: bool = True) -> None:
        """Queue an item other than metric points. Opening the tracker's run, params and artifacts
        wake the worker, so they go out while training runs rather than all at its end; lifecycle
        events (many per epoch) wait for the next flush."""
        self._items.append((kind, payload))
        if wake:
            self._wake.set()

    # -- the worker thread -------------------------------------------------------
    def _work(self) -> None:
        """Every ``flush_interval_s`` (or when woken by :meth:`_put`) take what the training thread
        queued and send it in order: metric points in calls of ``batch_size``, so SDKs run a few
        large batches instead of waking for every step; params, artifacts and the end after the
        points queued before them. Lifecycle events go out as they come and do not cut a batch
        of points in two (epoch ends would otherwise make a store transaction per epoch; no
        tracker orders its events against metric points)."""
        items = self._items
        while True:
            self._wake.wait(self.config.flush_interval_s)
            self._wake.clear()
            pending: list[MetricPoint] = []
            while items:
                kind, payload = items.popleft()
                if kind == "metrics":
                    pending.extend(payload)
                    continue
                if kind == "event":
                    self._send(kind, payload)
                    continue
                self._send_points(pending)
                pending = []
                self._send(kind, payload)
                if kind == "close":
                    return
            self._send_points(pending)

    def _send_points(self, points: list[MetricPoint]) -> None:
        size = self.config.batch_size
        for i in range(0, len(points), size):
            self._send("metrics", points[i:i + size])

    def _send(self, kind: str, payload: Any) -> None:
        """Call the SDK (on the worker thread)."""
        if kind == "metrics":
            self._deliver(self.send_metrics, payload, count=len(payload))
        elif kind in ("artifact", "event"):
            self._deliver(getattr(self, f"send_{kind}"), *payload, count=1)
        else:
            method = {"open": self.open, "params": self.send_params, "close": self.close}[kind]
            self._deliver(method, payload, count=1)

    def _deliver(self, method: Any, *args: Any, count: int) -> None:
        if self.broken is not None:
            self.unsent += count
            return
        try:
            method(*args)
        except Exception as exc:  # logged once; training never sees it
            self.broken = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            self.unsent += count
            log.warning("tracker '%s' failed (%s); training goes on with the local record, and "
                        "`hookforge sync RUN_DIR --tracker %s` replays it later", self.plugin_name,
                        self.broken, self.plugin_name)

    # -- replay (hookforge sync) -----------------------------------------------------------------
    def sync(self, record: Any) -> str:
        """Replay the local record synchronously: params, the metric points the tracker does not
        have yet, artifacts and the final status. Running it twice adds nothing."""
        from datetime import datetime

        from hookforge.config.secrets import flatten, redact

        context = RunContext.from_record(record)
        self.context = context
        self.open(context)
        self.send_params(flatten(redact(record.read_config())))
        start = context.info.get("start_time")
        stamp = int(datetime.fromisoformat(start).timestamp() * 1000) if start else 0
        # A multiset: the same value may be logged twice at one step (the last epoch's
        # validation and the final evaluation), and both belong in the tracker.
        have = Counter(self.existing_points())
        # distinct timestamps (start + row index, in ms): stores that key points on the timestamp
        # (MLflow) would otherwise merge two equal points logged at one step
        points = [MetricPoint(f"{r['split']}/{r['name']}", r["value"], r["step"], r["epoch"], stamp + i)
                  for i, r in enumerate(record.read_metrics())]
        missing = []
        for point in points:
            identity = point_key(self.tracker_key(point.key), point.step, point.value)
            if have[identity] > 0:
                have[identity] -= 1
            else:
                missing.append(point)
        for i in range(0, len(missing), self.config.batch_size):
            self.send_metrics(missing[i:i + self.config.batch_size])
        for kind, path in record_artifacts(record):
            self.send_artifact(path, kind)
        self.close(context.info.get("status", "finished"))
        return (f"synced {record.path} to '{self.plugin_name}': {len(missing)} metric points added, "
                f"{len(points) - len(missing)} already there")


def _key_value(value: float) -> float | str:
    return "nan" if value != value else round(float(value), 12)


def point_key(key: str, step: int, value: float) -> tuple[str, int, float | str]:
    """The identity of a metric point when comparing a tracker's history with the record."""
    return key, step, _key_value(value)


def record_artifacts(record: Any) -> Iterator[tuple[str, Path]]:
    """The files of a run record worth mirroring, as the run reports them at its end."""
    if record.config_file.exists():
        yield "config", record.config_file
    if record.evaluation_file.exists():
        yield "evaluation", record.evaluation_file
    if record.figures_dir.is_dir():
        for figure in sorted(record.figures_dir.glob("*.png")):
            yield "figure", figure
    best = record.final_checkpoint_dir()
    if best is not None:
        yield "checkpoint", best
