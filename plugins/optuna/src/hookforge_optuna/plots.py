"""A search stage's PNG plots: optuna's matplotlib visualisations, saved without pickle.

(Drawing them in a helper process that imports matplotlib while the trials run was measured: it
made a 40-trial search slower on 2 cores, the trials' BLAS and storage work leaving no idle core.)
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("hookforge")


def draw_plots(study: Any, metrics: list[str], stage_dir: Path) -> None:
    """optimization_history, param_importances, parallel_coordinate (one objective) or
    pareto_front (several) as PNGs in ``stage_dir``; a plot the study cannot make is skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    import optuna.visualization.matplotlib as plots

    from hookforge.figures import save_figure

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return
    single = len(metrics) == 1
    searched = {name for trial in complete for name in trial.params}
    # one parameter has all the importance there is; fANOVA's forest would take ~0.5 s to say so
    wanted = [("optimization_history", plots.plot_optimization_history, single),
              ("param_importances", plots.plot_param_importances,
               single and len(complete) > 1 and len(searched) > 1),
              ("parallel_coordinate", plots.plot_parallel_coordinate, single),
              ("pareto_front", plots.plot_pareto_front, not single)]
    for title, draw, applicable in wanted:
        if not applicable:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
                axes = draw(study)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            save_figure(figure, stage_dir / f"{title}.png")
            plt.close(figure)  # optuna draws with pyplot, which keeps every figure until closed
        except Exception as exc:  # too few trials or parameters for this plot
            log.info("plot %s skipped: %s", title, exc)
