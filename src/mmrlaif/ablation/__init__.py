"""Ablations: the same pipeline under several configurations and seeds, side by side.

Each seed fine-tunes its base policy once and every variant of that seed starts from that very
policy (``model.name_or_path`` = its folder), so variants differ only in what they change. Runs
are separate ``mmrlaif run`` processes, several at a time with ``jobs``. Results:
``results.json`` (every run's per-iteration figures), ``results.md`` (mean and spread over seeds
per variant) and ``ablation.png`` (ObjHal and Cover against iteration).

- :mod:`~mmrlaif.ablation.variants`: what each variant changes, the strong labeler's recipe.
- :mod:`~mmrlaif.ablation.runs`: the driver (:func:`run_ablation`).
- :mod:`~mmrlaif.ablation.results`: the summary over seeds, the table and the plot.
"""

from mmrlaif.ablation.results import (
    FIGURES,
    AblationRun,
    markdown_table,
    plot,
    summarize,
    write_results,
)
from mmrlaif.ablation.runs import AblationError, expected_cost, run_ablation
from mmrlaif.ablation.variants import CHECKER, VARIANTS, needs_checker, variant_config

__all__ = [
    "CHECKER",
    "FIGURES",
    "VARIANTS",
    "AblationError",
    "AblationRun",
    "expected_cost",
    "markdown_table",
    "needs_checker",
    "plot",
    "run_ablation",
    "summarize",
    "variant_config",
    "write_results",
]
