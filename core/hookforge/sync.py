"""``hookforge sync``: replay a run's local record into a tracker, after the fact.

The local record is the source of truth; a tracker that was down during training (or added later)
catches up here. Each tracker's ``sync`` is idempotent: running it twice adds nothing.
"""

from __future__ import annotations

from pathlib import Path

from hookforge import registry
from hookforge.config.secrets import REDACTED
from hookforge.errors import PluginError, UsageError
from hookforge.record import RunRecord


def sync_run(run_dir: str | Path, tracker_name: str) -> str:
    """Replay ``run_dir`` into the tracker ``tracker_name``; returns the tracker's summary line."""
    record = RunRecord.open(run_dir)
    verify_record_checkpoints(record)
    try:
        registry.find("tracker", tracker_name)
    except PluginError as exc:
        raise UsageError(f"cannot sync to tracker '{tracker_name}': {exc}") from None
    cls = registry.load("tracker", tracker_name)
    options: dict = {}
    for section in record.read_config().get("trackers") or []:
        if isinstance(section, dict) and section.get("name") == tracker_name:
            # Secrets were redacted from config.yaml: let the tracker find them in the environment.
            options = {k: v for k, v in section.items() if k != "name" and v != REDACTED}
    tracker = cls(cls.Config.model_validate(options))
    return tracker.sync(record)


def verify_record_checkpoints(record: RunRecord) -> None:
    """Check every checkpoint of ``record`` as loading does (sha256 against checkpoint.json and
    run.json), so that a tracker never receives weights that evaluate and predict would refuse."""
    for tag in sorted(record.info().get("checkpoints") or {}):
        if record.checkpoint_dir(tag) is not None:
            record.verified_checkpoint(tag)
