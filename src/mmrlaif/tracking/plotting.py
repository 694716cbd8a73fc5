"""Plot hallucination measures against the alignment iteration.

Uses ``matplotlib.figure.Figure`` with the Agg canvas directly: no pyplot, no global backend
switch, safe in headless component processes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from mmrlaif.io import atomic_path
from mmrlaif.tracking._mlflow import as_number

logger = logging.getLogger(__name__)

DEFAULT_PLOT_KEYS = ("object_hal", "response_hal", "cover")

_LABELS = {"object_hal": "ObjHal", "response_hal": "RespHal", "cover": "Cover"}


def plot_iterations(
    headlines: Sequence[Mapping[str, float]],
    path: str | Path,
    keys: Sequence[str] = DEFAULT_PLOT_KEYS,
) -> Path:
    """Draw one line per measure against the iteration and write it as a PNG.

    Args:
        headlines: Headline measures by iteration (fractions in [0, 1]); index 0 is the base
            policy. Missing or non-numeric values leave a gap.
        path: Target ``.png``; parent folders are created, and the file is written atomically.
        keys: Measures to draw, plotted as percentages.

    Returns:
        The written path.

    Raises:
        ValueError: ``headlines`` is empty.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not headlines:
        raise ValueError("no headlines to plot")
    path = Path(path)
    iterations = list(range(len(headlines)))
    fig = Figure(figsize=(6.0, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for key in keys:
        values = [_percent(h.get(key)) for h in headlines]
        if all(math.isnan(v) for v in values):
            continue
        ax.plot(iterations, values, marker="o", label=_LABELS.get(key, key))
    ax.set_xlabel("iteration (0 = base policy)")
    ax.set_ylabel("%")
    ax.set_xticks(iterations)
    ax.set_title("Hallucination vs. alignment iteration")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    logger.debug("wrote plot of %d iterations to %s", len(headlines), path)
    return path


def _percent(value: object) -> float:
    """``value`` * 100 as a float, NaN when it is missing or not a number."""
    number = as_number(value)
    return math.nan if number is None else number * 100.0
