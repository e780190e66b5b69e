"""System metrics, as Comet and MLflow users expect them: the process's CPU and memory, the
machine's memory, and (with NVIDIA's NVML through ``nvidia-ml-py``) each GPU's utilisation and
memory, sampled every ``run.system_metrics_interval_s`` seconds on a daemon thread.

The thread only samples into a deque. The run drains it on the training thread at its next
reporting point (``report_steps``, ``end_epoch``, the end), so trackers see the samples through
the ordinary ``log_metrics`` path, at the step training had reached, and never from a second
thread.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

log = logging.getLogger("hookforge")


class SystemMonitor:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.samples: deque[dict[str, float]] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="hookforge-system-metrics",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def drain(self) -> list[dict[str, float]]:
        taken = []
        while self.samples:
            taken.append(self.samples.popleft())
        return taken

    def _loop(self) -> None:
        try:
            import psutil
        except ImportError:
            log.warning("system metrics need psutil (pip install psutil); none are recorded")
            return
        process = psutil.Process()
        process.cpu_percent(None)  # the first call starts the measuring interval
        psutil.cpu_percent(None)
        gpus = _nvml_handles()
        while not self._stop.wait(self.interval_s):
            try:
                self.samples.append(_sample(psutil, process, gpus))
            except Exception as exc:  # a sampling failure must never touch training
                log.debug("system metrics: sampling failed (%s)", exc)
                return


def _sample(psutil: Any, process: Any, gpus: list[Any]) -> dict[str, float]:
    memory = psutil.virtual_memory()
    values = {"cpu_percent": psutil.cpu_percent(None),
              "process_cpu_percent": process.cpu_percent(None),
              "process_memory_mb": process.memory_info().rss / 2**20,
              "memory_used_percent": memory.percent,
              "memory_available_mb": memory.available / 2**20}
    if gpus:
        import pynvml

        for i, handle in enumerate(gpus):
            use = pynvml.nvmlDeviceGetUtilizationRates(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            values[f"gpu{i}_utilization_percent"] = float(use.gpu)
            values[f"gpu{i}_memory_used_mb"] = mem.used / 2**20
    return values


def _nvml_handles() -> list[Any]:
    """NVML handles of the machine's GPUs; none without nvidia-ml-py or a driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # not installed, no driver, no GPU
        return []
