"""The ``tasks`` evaluator: scores what a model generated with each row's task-family verifier.

Per family: accuracy (score 1), mean, std and median score, success rate (score > 0) with its
Jeffreys interval (Beta(s + 1/2, n - s + 1/2), the 10th and 90th percentiles by default), and
how many checks failed (a verifier that crashes or times out scores 0 and is counted, never
stops the evaluation); the same aggregated over every family, weighted by samples. Rows without
a family (a user's own data) are scored by exact match with the reference completion.

Metric names are ``<family>/<metric>``, so ``hookforge compare`` shows a column per family and
the Pareto front over them. With a run record, the final evaluation also writes every sample's
prompt, completion and score to ``generations/<split>.jsonl``.

During training the validation predictions are token losses, not generations: for those this
evaluator reports the completion perplexity (hookforge-torch's evaluator) and generates nothing.
The episodes of a text environment (the ``text_env`` source) are scored as hookforge-ppo's
``episodes`` evaluator scores them (returns, lengths, success rate with its interval), and the
final evaluation writes each episode's transcript to ``generations/<split>.jsonl``.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pydantic import Field

from hookforge.components import ComponentConfig, Evaluator

if TYPE_CHECKING:  # pragma: no cover
    from hookforge.run import Run
    from hookforge.types import Predictions

log = logging.getLogger("hookforge")
USER_DATA = "user"  # the family name given to rows without one


class TasksEvaluatorConfig(ComponentConfig):
    interval: float = Field(0.8, gt=0, lt=1, description="mass of the success-rate intervals")
    workers: int = Field(2, ge=1, description="verifier checks run in parallel (each in its own "
                                              "sandboxed process where code runs)")


def summarize(scores: list[float], errors: int, level: float) -> dict[str, float]:
    """The per-family statistics of a list of scores in [0, 1]."""
    import numpy as np

    from hookforge.compare import jeffreys_interval

    values = np.asarray(scores, dtype=float)
    n = len(values)
    successes = int((values > 0).sum())
    low, high = jeffreys_interval(successes, n, level)
    correct = int((values >= 1.0).sum())
    acc_low, acc_high = jeffreys_interval(correct, n, level)
    return {"n_samples": float(n), "accuracy": correct / n, "accuracy_low": acc_low,
            "accuracy_high": acc_high, "mean_score": float(values.mean()),
            "std_score": float(values.std()), "median_score": float(np.median(values)),
            "success_rate": successes / n, "success_rate_low": low, "success_rate_high": high,
            "verifier_errors": float(errors)}


class TasksEvaluator(Evaluator):
    """Per-family verification of generated answers (see the module docstring)."""

    tasks = ("generation", "language_modeling", "rl")
    Config = TasksEvaluatorConfig

    def evaluate(self, run: Run, split: str, predictions: Predictions,
                 final: bool = True) -> dict[str, Any]:
        if predictions.task == "language_modeling":
            from hookforge_torch.perplexity import PerplexityEvaluator

            return PerplexityEvaluator().evaluate(run, split, predictions, final)
        if predictions.task == "rl":  # the episodes of a text environment (the text_env source)
            from hookforge_ppo.evaluator import EpisodesEvaluator

            metrics = EpisodesEvaluator(interval=self.config.interval).evaluate(
                run, split, predictions, final)
            if final and run.record is not None and run.primary:
                self._write_episodes(run, split, predictions)
            return metrics
        inputs = getattr(predictions, "inputs", None)
        if inputs is None or len(predictions) == 0:
            return {}
        families = self._families(run)
        answers = [str(a) for a in predictions.y_pred]
        references = list(predictions.y_true) if predictions.y_true is not None else [None] * len(answers)
        names = [f if isinstance(f, str) and f else USER_DATA for f in inputs["family"]]
        data = list(inputs["data"])
        jobs = [(names[i], data[i], answers[i], references[i]) for i in range(len(answers))]
        with ThreadPoolExecutor(self.config.workers) as pool:  # the checks wait on processes
            results = list(pool.map(lambda job: self._check(families, *job), jobs))
        out: dict[str, Any] = {}
        by_family: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            by_family.setdefault(name, []).append(i)
        for name, rows in sorted(by_family.items()):
            stats = summarize([results[i][0] for i in rows],
                              sum(results[i][1] is not None for i in rows), self.config.interval)
            out.update({f"{name}/{k}": v for k, v in stats.items()})
        overall = summarize([r[0] for r in results], sum(r[1] is not None for r in results),
                            self.config.interval)
        out.update({k: v for k, v in overall.items() if k != "n_samples"})
        out["families"] = float(len(by_family))
        if final and run.record is not None and run.primary:
            self._write_samples(run, split, inputs, answers, results, names)
        return out

    def _families(self, run: Run) -> dict[str, Any]:
        """A verifier per family of the run's data, built with the options it was generated with."""
        from hookforge import registry
        from hookforge.errors import PluginError
        from hookforge_lm.data import family_options

        recorded = family_options(run.dataset.info) if run.dataset is not None else {}
        verifiers: dict[str, Any] = {}
        for name, options in recorded.items():
            try:
                cls = registry.load("task", name)
                verifiers[name] = cls(cls.Config.model_validate(options))
            except (PluginError, ValueError) as exc:
                log.warning("tasks evaluator: family '%s' cannot be checked (%s); its answers "
                            "score 0", name, exc)
        return verifiers

    def _check(self, verifiers: dict[str, Any], family: str, data: Any, answer: str,
               reference: Any) -> tuple[float, str | None]:
        """(score, why it failed or None) of one answer; never raises."""
        if family == USER_DATA:
            return float(reference is not None and answer.strip() == str(reference).strip()), None
        verifier = verifiers.get(family)
        if verifier is None:
            from hookforge import registry
            from hookforge.errors import PluginError

            try:  # a family the data names but did not record (a user's file with families)
                cls = registry.load("task", family)
                verifier = verifiers[family] = cls()
            except PluginError as exc:
                return 0.0, f"unknown family: {str(exc).splitlines()[0]}"
        try:
            parsed = json.loads(data) if isinstance(data, str) else data
            score = float(verifier.verify(parsed, answer))
        except Exception as exc:  # a verifier bug must not stop the evaluation: 0, and counted
            return 0.0, f"{type(exc).__name__}: {exc}"[:200]
        if not 0.0 <= score <= 1.0 or score != score:
            return 0.0, f"score {score} outside [0, 1]"
        return score, None

    def _write_episodes(self, run: Run, split: str, episodes: Any) -> None:
        from hookforge.fileio import atomic_write_text

        frame = episodes.to_frame()
        target = run.record.path / "generations" / f"{split}.jsonl"
        target.parent.mkdir(exist_ok=True)
        atomic_write_text(target, frame.to_json(orient="records", lines=True))

    def _write_samples(self, run: Run, split: str, inputs: Any, answers: list[str],
                       results: list[tuple[float, str | None]], names: list[str]) -> None:
        from hookforge.fileio import atomic_write_text

        lines = [json.dumps({"family": names[i], "prompt": str(inputs["prompt"].iloc[i]),
                             "completion": answers[i], "score": results[i][0],
                             **({"error": results[i][1]} if results[i][1] else {})})
                 for i in range(len(answers))]
        target = run.record.path / "generations" / f"{split}.jsonl"
        target.parent.mkdir(exist_ok=True)
        atomic_write_text(target, "\n".join(lines) + "\n")
