"""BackgroundTracker, the base of the mlflow and comet trackers: the training thread only queues,
the worker sends in order and in batches, a slow or failing tracker costs training nothing."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from hookforge.tracking import BackgroundTracker


class Recording(BackgroundTracker):
    plugin_name = "recording"

    def __init__(self, block: threading.Event | None = None, fail: bool = False,
                 hold_open: threading.Event | None = None, **options):
        super().__init__(**options)
        self.calls: list[tuple] = []
        self.block, self.fail, self.hold_open = block, fail, hold_open

    def open(self, context):
        if self.hold_open is not None:  # so that the test queues everything before the worker drains
            self.hold_open.wait()
        self.calls.append(("open", context.name))

    def send_params(self, params):
        self.calls.append(("params", params))

    def send_metrics(self, points):
        if self.block is not None:
            self.block.wait()
        if self.fail:
            raise ConnectionError("tracking server down\nsecond line")
        self.calls.append(("metrics", [(p.key, p.step, p.value) for p in points]))

    def send_artifact(self, path, kind):
        self.calls.append(("artifact", kind))

    def send_event(self, event, payload):
        self.calls.append(("event", event))

    def close(self, status):
        self.calls.append(("close", status))


def started(tracker: Recording, tmp_path: Path) -> Recording:
    run = SimpleNamespace(dir=tmp_path, name="r", run_id="id", resumed=False, parent=None,
                          config=SimpleNamespace(run=SimpleNamespace(tags={})))
    tracker.start(run)
    return tracker


def test_items_go_out_in_order_with_points_in_batches(tmp_path):
    opened = threading.Event()
    tracker = started(Recording(batch_size=4, hold_open=opened), tmp_path)
    tracker.log_params({"lr": 0.1})
    for step in range(5):
        tracker.log_metrics({"loss": 1.0 / (step + 1), "acc": 0.5}, step=step, epoch=0, split="train")
    tracker.log_event("epoch_end", {})
    tracker.log_metrics({"loss": 0.1}, step=5, epoch=0, split="val")
    tracker.log_artifact(tmp_path, "figure")
    opened.set()
    tracker.finalize("finished")
    # metric points in calls of at most 4, in the order logged, before the artifact queued after
    # them; the event goes out as it comes, without cutting the points around it into two batches
    kinds = [kind for kind, _ in tracker.calls]
    assert kinds == ["open", "params", "event", "metrics", "metrics", "metrics", "artifact", "close"]
    batches = [payload for kind, payload in tracker.calls if kind == "metrics"]
    assert [len(batch) for batch in batches] == [4, 4, 3]
    points = [point for batch in batches for point in batch]
    assert points == [point for step in range(5)
                      for point in (("train/loss", step, 1.0 / (step + 1)), ("train/acc", step, 0.5))
                      ] + [("val/loss", 5, 0.1)]
    assert tracker.calls[-1] == ("close", "finished")


def test_a_stalled_tracker_costs_training_nothing_and_the_end_waits_a_bounded_time(tmp_path, caplog):
    stall = threading.Event()
    tracker = started(Recording(block=stall, flush_interval_s=0.01, flush_timeout_s=0.3), tmp_path)
    start = time.perf_counter()
    for step in range(20_000):
        tracker.log_metrics({"loss": 0.5}, step=step, epoch=0, split="train")
    logging_time = time.perf_counter() - start
    time.sleep(0.05)  # the worker is now stuck in send_metrics
    with caplog.at_level(logging.WARNING, logger="hookforge"):
        start = time.perf_counter()
        tracker.finalize("finished")
        waited = time.perf_counter() - start
    stall.set()
    assert logging_time < 1.0  # 20,000 queued points; generous, CI machines are slow
    assert 0.25 < waited < 2.0
    assert "did not finish sending within 0.3s" in caplog.text
    assert "hookforge sync" in caplog.text


def test_a_failing_tracker_warns_once_and_counts_what_it_could_not_send(tmp_path, caplog):
    tracker = started(Recording(fail=True, batch_size=10), tmp_path)
    with caplog.at_level(logging.WARNING, logger="hookforge"):
        for step in range(25):
            tracker.log_metrics({"loss": 0.5}, step=step, epoch=0, split="train")
        tracker.log_artifact(tmp_path, "figure")
        tracker.finalize("finished")
    failures = [r for r in caplog.records if "failed (ConnectionError: tracking server down)" in r.message]
    assert len(failures) == 1
    assert tracker.unsent == 25 + 2  # every point, the artifact and the close
    assert "could not send 27 records" in caplog.text
    assert [kind for kind, _ in tracker.calls] == ["open"]
