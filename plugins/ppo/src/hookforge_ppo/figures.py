"""PPO's figures, drawn at the final evaluation from the run's metrics: the learning curve
(return against environment steps, smoothed, with the spread of the evaluation episodes), the
episode length, and the update's diagnostics (losses, entropy, approx. KL, clip fraction,
explained variance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hookforge.figures import new_figure, save_figure


def _series(rows: list[dict[str, Any]], split: str, name: str) -> tuple[list[int], list[float]]:
    points = sorted((r["step"], r["value"]) for r in rows
                    if r["split"] == split and r["name"] == name and r["epoch"] is not None)
    return [p[0] for p in points], [p[1] for p in points]


def _smooth(values: list[float], window: int = 10) -> list[float]:
    import numpy as np

    if len(values) < 3:
        return values
    array = np.asarray(values, dtype=float)
    kernel = min(window, len(array))
    padded = np.concatenate([np.full(kernel - 1, array[0]), array])
    return np.convolve(padded, np.ones(kernel) / kernel, mode="valid").tolist()


def draw(rows: list[dict[str, Any]], directory: Path, title: str) -> list[Path]:
    written = []
    steps, returns = _series(rows, "rollout", "mean_return")
    val_steps, val_mean = _series(rows, "val", "mean_return")
    _, val_std = _series(rows, "val", "std_return")
    if steps or val_steps:
        fig = new_figure(6.4, 4)
        ax = fig.add_subplot()
        if steps:
            ax.plot(steps, returns, alpha=0.3, color="C0")
            ax.plot(steps, _smooth(returns), color="C0", label="training episodes (smoothed)")
        if val_steps:
            import numpy as np

            mean, std = np.asarray(val_mean), np.asarray(val_std[:len(val_mean)])
            ax.plot(val_steps, mean, marker="o", markersize=3, color="C1", label="evaluation")
            if len(std) == len(mean):
                ax.fill_between(val_steps, mean - std, mean + std, color="C1", alpha=0.2,
                                label="evaluation ± std")
        ax.set(xlabel="environment steps", ylabel="episode return", title=f"{title}: learning curve")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        written.append(save_figure(fig, directory / "ppo_learning_curve.png"))
    steps, lengths = _series(rows, "rollout", "mean_length")
    if steps:
        fig = new_figure(6.4, 3.6)
        ax = fig.add_subplot()
        ax.plot(steps, lengths, alpha=0.3, color="C2")
        ax.plot(steps, _smooth(lengths), color="C2")
        ax.set(xlabel="environment steps", ylabel="episode length", title=f"{title}: episode length")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        written.append(save_figure(fig, directory / "ppo_episode_length.png"))
    panels = [("policy_loss", "policy loss"), ("value_loss", "value loss"), ("entropy", "entropy"),
              ("approx_kl", "approx. KL"), ("clip_fraction", "clip fraction"),
              ("explained_variance", "explained variance")]
    present = [(name, label) for name, label in panels if _series(rows, "train", name)[0]]
    if present:
        fig = new_figure(9, 5.4)
        for i, (name, label) in enumerate(present, 1):
            ax = fig.add_subplot(2, 3, i)
            steps, values = _series(rows, "train", name)
            ax.plot(steps, values, linewidth=1)
            ax.set_title(label, fontsize=9)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        fig.suptitle(f"{title}: PPO updates", fontsize=10)
        fig.tight_layout()
        written.append(save_figure(fig, directory / "ppo_updates.png"))
    return written
