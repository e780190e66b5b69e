"""Overhead of `hookforge train` with hookforge-gbm against plain LightGBM and XGBoost scripts.

A synthetic 200,000 x 50 classification set (sklearn's make_classification) is written once as
Parquet. Each side runs as a whole process: read the file, split 70/15/15 (stratified, seeded),
train the same parameters for the same number of rounds with the validation set evaluated every
round, predict the test split. hookforge also writes its run record, evaluates val and test with
every metric and saves the model with hashes. Reported per library:

- wall-time ratio hookforge / plain (target <= 1.05 plus interpreter start), and the same ratio
  after subtracting the difference in start-up (`python -m hookforge --version` vs `python -c
  pass`);
- peak RSS of each process (target: hookforge <= plain + 80 MB).

    .venv/bin/python benchmarks/gbm_overhead.py [--rows 200000] [--rounds 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN = '''
import sys
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

library, path, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
frame = pd.read_parquet(path)
X, y = frame.drop(columns="target"), frame["target"].to_numpy()
X_train, X_rest, y_train, y_rest = train_test_split(X, y, test_size=0.3, stratify=y, random_state=42)
X_val, X_test, y_val, y_test = train_test_split(X_rest, y_rest, test_size=0.5, stratify=y_rest,
                                                random_state=42)
if library == "lightgbm":
    import lightgbm as lgb
    params = {"objective": "binary", "metric": ["binary_logloss", "auc", "binary_error"],
              "learning_rate": 0.05, "num_leaves": 31, "seed": 42, "verbosity": -1}
    train = lgb.Dataset(X_train.to_numpy(np.float32), y_train)
    val = lgb.Dataset(X_val.to_numpy(np.float32), y_val, reference=train)
    booster = lgb.train(params, train, num_boost_round=rounds, valid_sets=[val])
    p = booster.predict(X_test.to_numpy(np.float32))
else:
    import xgboost as xgb
    params = {"objective": "binary:logistic", "eval_metric": ["error", "auc", "logloss"],
              "eta": 0.1, "max_depth": 6, "tree_method": "hist", "seed": 42}
    train = xgb.QuantileDMatrix(X_train.to_numpy(np.float32), y_train)
    val = xgb.QuantileDMatrix(X_val.to_numpy(np.float32), y_val, ref=train)
    booster = xgb.train(params, train, num_boost_round=rounds, evals=[(val, "val")], verbose_eval=False)
    p = booster.predict(xgb.DMatrix(X_test.to_numpy(np.float32)))
print("test accuracy", ((p > 0.5) == y_test).mean())
'''


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "HOOKFORGE_PROGRESS": "0"})
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    err = process.stderr.read().decode() if process.stderr else ""
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        X, y = make_classification(n_samples=args.rows, n_features=50, n_informative=20,
                                   random_state=0)
        frame = pd.DataFrame(X.astype(np.float32), columns=[f"f{i}" for i in range(50)])
        frame["target"] = y
        frame.to_parquet(work / "data.parquet")
        (work / "plain.py").write_text(PLAIN)
        start_plain = statistics.median(timed([python, "-c", "pass"], work)[0] for _ in range(5))
        start_hf = statistics.median(timed([python, "-m", "hookforge", "--version"], work)[0]
                                     for _ in range(5))
        print(f"data: {args.rows} x 50, {args.rounds} rounds; start-up: python {start_plain:.3f} s, "
              f"hookforge CLI {start_hf:.3f} s")
        models = {
            "lightgbm": ["model.learning_rate=0.05", "model.num_leaves=31"],
            "xgboost": ["model.eta=0.1", "model.max_depth=6"],
        }
        for library, options in models.items():
            hookforge = [python, "-m", "hookforge", "train", "--data", "parquet",
                         f"data.path={work / 'data.parquet'}", "data.target=target",
                         "data.split.val=0.15", "data.split.test=0.15", "--model", library,
                         f"model.n_estimators={args.rounds}", "model.early_stopping_rounds=null",
                         "run.seed=42", f"run.output_dir={work / 'outputs'}", *options]
            plain = [python, str(work / "plain.py"), library, str(work / "data.parquet"),
                     str(args.rounds)]
            ours, bare, theirs = [], [], []
            for _ in range(args.repeats):  # alternate, so drifts in machine load hit both sides
                theirs.append(timed(plain, work))
                ours.append(timed(hookforge, work))
                bare.append(timed([*hookforge, "run.figures=false"], work))
            t_ours = statistics.median(t for t, _ in ours)
            t_bare = statistics.median(t for t, _ in bare)
            t_theirs = statistics.median(t for t, _ in theirs)
            rss_ours, rss_theirs = max(r for _, r in ours), max(r for _, r in theirs)
            extra_start = start_hf - start_plain
            print(f"{library}: plain {t_theirs:.2f} s, hookforge {t_ours:.2f} s, ratio "
                  f"{t_ours / t_theirs:.3f} (target <= 1.05 plus start-up); without the "
                  f"{extra_start:.2f} s of extra start-up: {(t_ours - extra_start) / t_theirs:.3f}")
            print(f"{library}: hookforge without figures (run.figures=false) {t_bare:.2f} s, ratio "
                  f"{t_bare / t_theirs:.3f}")
            print(f"{library}: peak RSS plain {rss_theirs:.0f} MB, hookforge {rss_ours:.0f} MB, "
                  f"difference {rss_ours - rss_theirs:+.0f} MB (target <= +80 MB)")


if __name__ == "__main__":
    main()
