"""Search throughput of `hookforge search` (optuna searcher).

1. Overhead: 40 trials of logistic regression on breast_cancer (C searched on a log scale), through
   `hookforge search` and through a plain optuna script with the same sampler, seed and split
   sizes; wall-time ratio. Target (issue 5): <= 1.10. Every hookforge trial is a full run record
   (config, run.json, events, metrics, checkpoint with hashes, evaluation); figures are off for
   trials by default.
2. Scaling: trials of about 1 s (saga logistic regression on digits run for a fixed 750 epochs,
   tol=0, one BLAS thread each) with `--workers 2` against `--workers 1` on a 2-core machine.
   Target: speed-up >= 1.7.

    .venv/bin/python benchmarks/search_throughput.py [--trials 40] [--scaling-trials 16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

MODEL_MODULE = '''
"""A logistic-regression model for the benchmark, installed as a plugin for its subprocesses."""
import json
from pathlib import Path

import numpy as np
from pydantic import Field

from hookforge import ComponentConfig, Model
from hookforge.types import Predictions


class LogReg(Model):
    class Config(ComponentConfig):
        C: float = Field(1.0, gt=0)
        max_iter: int = 200
        solver: str = "lbfgs"
        tol: float = 1e-4

    def fit(self, run, dataset):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.classes = dataset.info.classes
        train = dataset.split("train")
        self.pipeline = make_pipeline(StandardScaler(), LogisticRegression(
            C=self.config.C, max_iter=self.config.max_iter, solver=self.config.solver,
            tol=self.config.tol))
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():  # tol=0 runs every epoch on purpose
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.pipeline.fit(np.asarray(train.X), train.y)

    def predict(self, inputs):
        scores = self.pipeline.predict_proba(np.asarray(inputs))
        return Predictions(scores.argmax(1), scores, classes=self.classes)

    def save(self, directory: Path):
        scaler, model = self.pipeline[0], self.pipeline[1]
        (directory / "logreg.json").write_text(json.dumps({"coef": model.coef_.tolist()}))

    def load(self, directory, info):
        raise NotImplementedError
'''


def install_model(site: Path) -> dict[str, str]:
    from hookforge.testing import install_fake_distribution

    install_fake_distribution(site, "hookforge-bench-logreg",
                              {"hookforge.models": {"logreg": "bench_logreg:LogReg"}},
                              {"bench_logreg": MODEL_MODULE})
    return {**os.environ, "PYTHONPATH": str(site), "HOOKFORGE_PROGRESS": "0"}


def hookforge_search(tmp: Path, env: dict[str, str], dataset: str, trials: int, workers: int,
                     max_iter: int, study: str, solver: str = "lbfgs", tol: float = 1e-4) -> float:
    config = {
        "run": {"name": study, "seed": 0, "output_dir": str(tmp / "out"), "progress": False},
        "data": {"name": "sklearn", "dataset": dataset},
        "model": {"name": "logreg", "max_iter": max_iter, "solver": solver, "tol": tol},
        "searcher": {"name": "optuna", "metric": "val/accuracy", "n_trials": trials,
                     "sampler": {"name": "tpe", "seed": 0},
                     "space": {"model.C": {"type": "loguniform", "low": 1e-3, "high": 1e2}}},
    }
    path = tmp / f"{study}.yaml"
    path.write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hookforge", "-q", "search", "-c", str(path),
                    "--workers", str(workers)], env=env, check=True, cwd=tmp,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


PLAIN = '''
import sys, optuna
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

optuna.logging.set_verbosity(optuna.logging.WARNING)
X, y = load_breast_cancer(return_X_y=True)
X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.15, random_state=0, stratify=y)
X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=0.15 / 0.85,
                                                  random_state=0, stratify=y_rest)

def objective(trial):
    model = make_pipeline(StandardScaler(), LogisticRegression(
        C=trial.suggest_float("model.C", 1e-3, 1e2, log=True), max_iter=200))
    model.fit(X_train, y_train)
    return accuracy_score(y_val, model.predict(X_val))

study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0),
                            storage=f"sqlite:///{sys.argv[2]}")
study.optimize(objective, n_trials=int(sys.argv[1]))
'''


def plain_search(tmp: Path, trials: int, name: str) -> float:
    script = tmp / "plain.py"
    script.write_text(PLAIN)
    start = time.perf_counter()
    subprocess.run([sys.executable, str(script), str(trials), str(tmp / f"{name}.db")], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--scaling-trials", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = install_model(tmp / "site")
        hook, plain = [], []
        for i in range(args.repeats):  # interleaved; each side a whole process, as a user runs it
            plain.append(plain_search(tmp, args.trials, f"plain{i}"))
            hook.append(hookforge_search(tmp, env, "breast_cancer", args.trials, 1, 200, f"hf{i}"))
        h, p = min(hook), min(plain)
        print(f"{args.trials} trials, logistic regression on breast_cancer (best of {args.repeats})")
        print(f"plain optuna script: {p:6.2f} s   hookforge search: {h:6.2f} s   "
              f"per trial: {p / args.trials * 1e3:.0f} ms vs {h / args.trials * 1e3:.0f} ms")
        ratio = h / p
        verdict = "met" if ratio <= 1.10 else "NOT met"
        print(f"ratio hookforge/plain = {ratio:.2f} (target <= 1.10: {verdict})")

        # One BLAS/OpenMP thread per trial for both runs: otherwise one worker's trial already
        # uses both cores and there is nothing left for a second worker to scale onto.
        single = {**env, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        n = args.scaling_trials
        if n < 1:  # --scaling-trials 0: the overhead part only
            return
        # tol=0: every trial runs all its epochs, so trials take the same time whatever C is
        one = hookforge_search(tmp, single, "digits", n, 1, 750, "scale1", "saga", 0.0)
        two = hookforge_search(tmp, single, "digits", n, 2, 750, "scale2", "saga", 0.0)
        print(f"{n} trials of about {one / n:.1f} s (saga logistic regression on digits): "
              f"1 worker {one:.1f} s, 2 workers {two:.1f} s")
        speedup = one / two
        print(f"speed-up = {speedup:.2f} (target >= 1.7: {'met' if speedup >= 1.7 else 'NOT met'})")


if __name__ == "__main__":
    main()
