"""A centroid model that takes a known time to fit, so parallel workers overlap in the tests."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from hookforge_example.centroid import NearestCentroid


class SlowCentroid(NearestCentroid):
    class Config(NearestCentroid.Config):
        sleep_s: float = Field(0.6, ge=0)

    def fit(self, run: Any, dataset: Any) -> None:
        time.sleep(self.config.sleep_s)
        super().fit(run, dataset)
