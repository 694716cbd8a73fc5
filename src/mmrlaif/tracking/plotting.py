"""The plots of a pipeline run: hallucination measures against the alignment iteration (a PNG
file, logged on the parent run), and the run report's figures (line panels and stacked bars,
as PNG ``data:`` URIs, :mod:`mmrlaif.tracking.report_html`).

Uses ``matplotlib.figure.Figure`` with the Agg canvas directly: no pyplot, no global backend
switch, safe in headless component processes; matplotlib is imported by the functions that
draw, so importing this module does not load it.
"""

from __future__ import annotations

import base64
import io
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrlaif.io import atomic_path
from mmrlaif.tracking.mlflow_client import as_number

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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
    # lazy: matplotlib, for the plots only
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


def number(value: Any) -> float | None:
    """``value`` as a float when it is an ``int`` or ``float`` (not a bool, not NaN), else
    ``None`` (a gap in a plot, a dash in a table)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def line_panels(
    panels: Sequence[tuple[str, str, Sequence[tuple[str, Sequence[Any], dict]]]],
    n_iterations: int | None,
    scale: float = 1.0,
    xlabel: str = "iteration (0 = base policy)",
) -> str:
    """Panels of lines side by side, one legend (the last panel's) on the right; x is the
    iteration, or each line's ``x`` style entry. Returns a PNG ``data:`` URI."""
    # lazy: matplotlib is heavy; only the code that draws pays for it
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(4.6 * len(panels) + 1.8, 3.6), dpi=100)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, ylabel, lines) in zip(axes, panels, strict=True):
        for label, values, style in lines:
            style = dict(style)
            xs = style.pop("x", list(range(len(values))))
            ys = [math.nan if number(v) is None else number(v) * scale for v in values]
            ax.plot(xs, ys, label=label, **({"marker": "o"} | style))
        if n_iterations is not None:
            ax.set_xticks(range(n_iterations))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.grid(True, alpha=0.3)
    _legend(axes[-1])
    return _png(fig)


def stacked_bars(
    xs: Sequence[int], stacks: Mapping[str, Sequence[float]], title: str, ylabel: str
) -> str:
    """Stacked bars per iteration ``xs``, one stack per label of ``stacks``. Returns a PNG
    ``data:`` URI."""
    # lazy: matplotlib is heavy; only the code that draws pays for it
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=100)
    ax = fig.subplots()
    bottom = [0.0] * len(xs)
    for label, values in stacks.items():
        ax.bar(xs, values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xticks(list(xs))
    ax.set(title=title, xlabel="iteration", ylabel=ylabel)
    _legend(ax)
    return _png(fig)


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)


def _png(fig: Figure) -> str:
    # lazy: matplotlib is heavy; only the code that draws pays for it
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
