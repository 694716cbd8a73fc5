"""What decides which policy an iteration carries forward: the selection figures, by name.

The names are config vocabulary (``pipeline.select_metric``), checked when a config loads; the
figures themselves are computed by :mod:`mmrlaif.evaluation.select`.
"""

from __future__ import annotations

#: The field's benchmarks the evaluation can run (``mmrlaif.evaluation.hallucination``).
BENCHMARK_NAMES = ("pope", "amber", "object_halbench", "mmhal")

#: Selection figures on the toy world's validation split, and whether higher is better.
TOY_SELECT_METRICS: dict[str, bool] = {
    "object_f1": True,
    "cover": True,
    "object_hal": False,
    "response_hal": False,
}
#: Selection figures on a held-out slice of a real benchmark (its report's headline keys, and
#: two harmonic means), and whether higher is better.
BENCHMARK_SELECT_METRICS: dict[str, bool] = {
    "amber_object_f1": True,
    "amber_chair": False,
    "amber_cover": True,
    "amber_hal": False,
    "amber_score": True,
    "object_halbench_object_f1": True,
    "object_halbench_response_hallucination_rate": False,
    "object_halbench_mention_hallucination_rate": False,
    "object_halbench_object_recall": True,
    "mmhal_score": True,
    "mmhal_hallucination_rate": False,
    **{
        f"pope_{split}_{figure}": True
        for split in ("random", "popular", "adversarial")
        for figure in ("accuracy", "f1")
    },
}
#: The selection "metric" that always carries the newly trained policy forward.
LATEST_METRIC = "latest"
#: ``eval.benchmarks.data`` value naming the toy world's validation split written in the
#: benchmark's published layout (AMBER's), a fixture for rehearsing selection on CPU.
TOYWORLD_DATA = "toyworld"


def selection_benchmark(metric: str) -> str | None:
    """The benchmark a selection metric is computed on (``None``: the toy world, or none)."""
    if metric not in BENCHMARK_SELECT_METRICS:
        return None
    return next(name for name in BENCHMARK_NAMES if metric.startswith(f"{name}_"))
