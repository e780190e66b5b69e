"""A hook-only plugin that implements every hook and records each call (for the meta-tests)."""

from __future__ import annotations

from collections import Counter

from hookforge import hookimpl


class Recorder:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    # run lifecycle
    @hookimpl
    def hookforge_run_start(self, run):
        self.calls["hookforge_run_start"] += 1

    @hookimpl
    def hookforge_run_end(self, run, status):
        self.calls["hookforge_run_end"] += 1

    @hookimpl
    def hookforge_on_exception(self, run, error):
        self.calls["hookforge_on_exception"] += 1

    @hookimpl
    def hookforge_log_event(self, run, event, payload):
        self.calls["hookforge_log_event"] += 1

    # data
    @hookimpl
    def hookforge_load_data(self, run):
        self.calls["hookforge_load_data"] += 1

    @hookimpl
    def hookforge_read_inputs(self, run, path):
        self.calls["hookforge_read_inputs"] += 1

    @hookimpl
    def hookforge_after_data(self, run, dataset):
        self.calls["hookforge_after_data"] += 1

    # model
    @hookimpl
    def hookforge_build_model(self, run, dataset):
        self.calls["hookforge_build_model"] += 1

    @hookimpl
    def hookforge_load_model(self, run, path):
        self.calls["hookforge_load_model"] += 1

    @hookimpl
    def hookforge_predict(self, run, model, inputs):
        self.calls["hookforge_predict"] += 1

    # loop
    @hookimpl
    def hookforge_fit(self, run, model, dataset):
        self.calls["hookforge_fit"] += 1

    @hookimpl
    def hookforge_before_fit(self, run, model, dataset):
        self.calls["hookforge_before_fit"] += 1

    @hookimpl
    def hookforge_after_fit(self, run, model, result):
        self.calls["hookforge_after_fit"] += 1

    @hookimpl
    def hookforge_before_epoch(self, run, epoch):
        self.calls["hookforge_before_epoch"] += 1

    @hookimpl
    def hookforge_after_epoch(self, run, result):
        self.calls["hookforge_after_epoch"] += 1

    @hookimpl
    def hookforge_after_step(self, run, result):
        self.calls["hookforge_after_step"] += 1

    @hookimpl
    def hookforge_on_checkpoint(self, run, checkpoint):
        self.calls["hookforge_on_checkpoint"] += 1

    # trackers
    @hookimpl
    def hookforge_log_params(self, run, params):
        self.calls["hookforge_log_params"] += 1

    @hookimpl
    def hookforge_log_metrics(self, run, metrics, step, epoch, split):
        self.calls["hookforge_log_metrics"] += 1

    @hookimpl
    def hookforge_log_artifact(self, run, path, kind):
        self.calls["hookforge_log_artifact"] += 1

    # evaluators
    @hookimpl
    def hookforge_evaluate(self, run, split, predictions, final):
        self.calls["hookforge_evaluate"] += 1
        return {"recorded": 1.0}

    # searchers
    @hookimpl
    def hookforge_search(self, session):
        self.calls["hookforge_search"] += 1

    @hookimpl
    def hookforge_after_trial(self, session, trial):
        self.calls["hookforge_after_trial"] += 1

    @hookimpl
    def hookforge_after_search(self, session, result):
        self.calls["hookforge_after_search"] += 1
