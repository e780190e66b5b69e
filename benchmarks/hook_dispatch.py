"""Cost of one lifecycle hook call with 3 observers registered, next to a plain method call.

Target (issue 2): under 3 microseconds per call. Also times `run.log_metrics` with the local
tracker (a buffered row per metric), the per-step path loops use every `log_every_n_steps`.

    .venv/bin/python benchmarks/hook_dispatch.py
"""

from __future__ import annotations

import tempfile
import timeit

import hookforge
from hookforge.types import StepResult


class Observer:
    @hookforge.hookimpl
    def hookforge_after_step(self, run, result):
        pass

    def plain(self, run, result):
        pass


def per_call_us(fn, number: int = 200_000, repeat: int = 5) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = {"run": {"output_dir": tmp, "progress": False},
                  "data": {"name": "sklearn", "dataset": "iris"}, "model": "centroid"}
        observers = [Observer() for _ in range(3)]
        run = hookforge.Run.from_config(config, plugins=observers)
        run._open()
        run.hook.hookforge_run_start(run=run)
        result = StepResult(1, 0, {"loss": 0.5})
        hook = run.hook.hookforge_after_step
        plain = per_call_us(lambda: [o.plain(run, result) for o in observers])
        dispatch = per_call_us(lambda: hook(run=run, result=result))
        log = per_call_us(lambda: run.log_metrics({"loss": 0.5, "acc": 0.9}, step=1, epoch=0),
                          number=50_000)
        run.hook.hookforge_run_end(run=run, status="finished")
    print(f"3 plain method calls:                  {plain:6.2f} us")
    print(f"hookforge_after_step, 3 observers:     {dispatch:6.2f} us  (ratio {dispatch / plain:.1f}x)")
    print(f"run.log_metrics, 2 values, local record: {log:6.2f} us")
    print(f"target: hook dispatch under 3 us -> {'met' if dispatch < 3 else 'NOT met'}")


if __name__ == "__main__":
    main()
