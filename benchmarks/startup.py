"""Start-up time of `hookforge --help` and `hookforge plugins`, next to a bare interpreter.

Runs each command N times interleaved and prints the median wall time and its ratio to
`python -c pass`. Target (issue 2): median under 0.30 s with every plugin installed.

    .venv/bin/python benchmarks/startup.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "hookforge --help": [sys.executable, "-m", "hookforge", "--help"],
    "hookforge plugins": [sys.executable, "-m", "hookforge", "plugins"],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeat):  # interleaved, so drift hits every command alike
        for name, command in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["python -c pass"])
    print(f"{'command':<22} {'median s':>9} {'ratio to bare python':>21}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<22} {median:>9.3f} {median / base:>21.2f}")
    worst = max(statistics.median(times[n]) for n in COMMANDS if n.startswith("hookforge"))
    print(f"target: under 0.300 s -> {'met' if worst < 0.30 else 'NOT met'} ({worst:.3f} s)")


if __name__ == "__main__":
    main()
