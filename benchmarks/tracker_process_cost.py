"""What `--tracker mlflow` costs a whole `hookforge train` process, as a user runs it.

Runs the MLP quickstart (configs/mlp_quickstart.yaml) as separate processes: the local record
only, MLflow on a new SQLite file, and MLflow on an existing one, alternating, ``--repeat`` times
each; prints the medians and the extra seconds. Then times, in fresh processes, the parts of the
MLflow tracker's work that are MLflow's own: importing mlflow, creating or opening the SQLite store,
and saving the served model (with MLflow's requirement check, which scans every installed
distribution). All of that runs on the tracker's worker thread, off the training thread; what
reaches the wall clock is the CPU it takes from training (the GIL) on a 2-core machine.

    python benchmarks/tracker_process_cost.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOOKFORGE = [sys.executable, "-m", "hookforge", "-q", "train", "-c",
             str(ROOT / "configs" / "mlp_quickstart.yaml")]

PARTS = {
    "import mlflow": "import mlflow",
    "create a new SQLite store": ("import mlflow; from mlflow import MlflowClient; import time; "
                                  "t=time.perf_counter(); MlflowClient('sqlite:///{tmp}/new.db')"
                                  ".search_experiments(); print(time.perf_counter()-t)"),
    "open an existing SQLite store": ("import mlflow; from mlflow import MlflowClient; import time; "
                                      "t=time.perf_counter(); MlflowClient('sqlite:///{tmp}/old.db')"
                                      ".search_experiments(); print(time.perf_counter()-t)"),
    "MLflow's requirement check (packages_distributions)": (
        "import mlflow.pyfunc, time; from mlflow.utils import requirements_utils as r; "
        "t=time.perf_counter(); r._init_packages_to_modules_map(); print(time.perf_counter()-t)"),
}


def timed(command: list[str], cwd: str) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def part_seconds(code: str, tmp: str) -> float:
    if "perf_counter" not in code:  # the import itself
        code = f"import time; t=time.perf_counter(); {code}; print(time.perf_counter()-t)"
    out = subprocess.run([sys.executable, "-c", code.format(tmp=tmp)], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"local only": [], "mlflow, new SQLite file": [],
                                     "mlflow, existing SQLite file": []}
    with tempfile.TemporaryDirectory() as tmp:
        timed([*HOOKFORGE, "--tracker", "mlflow", "trackers.1.tracking_uri=sqlite:///old.db"], tmp)
        for i in range(args.repeat):
            times["local only"].append(timed(HOOKFORGE, tmp))
            times["mlflow, new SQLite file"].append(timed(
                [*HOOKFORGE, "--tracker", "mlflow", f"trackers.1.tracking_uri=sqlite:///new{i}.db"], tmp))
            times["mlflow, existing SQLite file"].append(timed(
                [*HOOKFORGE, "--tracker", "mlflow", "trackers.1.tracking_uri=sqlite:///old.db"], tmp))
        base = statistics.median(times["local only"])
        print(f"whole `hookforge train` processes, MLP quickstart, median of {args.repeat}:")
        for name, values in times.items():
            median = statistics.median(values)
            extra = f"  (+{median - base:.2f} s)" if name != "local only" else ""
            print(f"  {name:<32} {median:6.2f} s{extra}")
        subprocess.run([sys.executable, "-c", "from mlflow import MlflowClient; "
                        f"MlflowClient('sqlite:///{tmp}/old.db').search_experiments()"],
                       check=True, capture_output=True)
        print("MLflow's own work, each in a fresh process (CPU on the tracker's worker thread):")
        for name, code in PARTS.items():
            print(f"  {name:<52} {part_seconds(code, tmp):5.2f} s")


if __name__ == "__main__":
    main()
