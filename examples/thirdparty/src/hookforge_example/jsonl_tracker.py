"""A tracker that appends every metric point to a JSON-lines file: the smallest complete tracker.

It implements the tracker interface (start, log_params, log_metrics, finalize) and ``sync``, which
replays a run record idempotently (the file is rewritten from the record, never appended twice).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from pydantic import Field

from hookforge import ComponentConfig, Tracker


class JsonlTracker(Tracker):
    """Writes params, metric points and the final status to ``<run dir>/<file>`` (or ``path``)."""

    class Config(ComponentConfig):
        path: str | None = Field(None, description="output file (default: RUN_DIR/tracker.jsonl)")

    _handle: TextIO | None = None

    def _target(self, run_dir: Path) -> Path:
        return Path(self.config.path) if self.config.path else run_dir / "tracker.jsonl"

    def start(self, run: Any) -> None:
        self._handle = open(self._target(run.dir), "a", encoding="utf-8")
        self._write({"type": "start", "run_id": run.run_id, "name": run.name})

    def _write(self, item: dict[str, Any]) -> None:
        if self._handle is not None:
            self._handle.write(json.dumps(item) + "\n")

    def log_params(self, params: dict[str, Any]) -> None:
        self._write({"type": "params", "params": params})

    def log_metrics(self, metrics: dict[str, float], step: int, epoch: int | None,
                    split: str) -> None:
        for name, value in metrics.items():
            self._write({"type": "metric", "key": f"{split}/{name}", "value": value, "step": step})

    def finalize(self, status: str) -> None:
        self._write({"type": "end", "status": status})
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def sync(self, record: Any) -> str:
        from hookforge.config.secrets import flatten, redact

        target = self._target(record.path)
        info = record.info()
        lines = [{"type": "start", "run_id": info.get("run_id"), "name": info.get("name")},
                 {"type": "params", "params": flatten(redact(record.read_config()))}]
        rows = record.read_metrics()
        lines += [{"type": "metric", "key": f"{r['split']}/{r['name']}", "value": r["value"],
                   "step": r["step"]} for r in rows]
        lines.append({"type": "end", "status": info.get("status")})
        target.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
        return f"synced {len(rows)} metric points of {record.path} to {target}"
