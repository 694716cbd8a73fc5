"""The pipeline's own sections: the iterative loop and its selection of the policy carried
forward, and MLflow tracking (``pipeline``, ``tracking``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mmrlaif.config.platform import GateConfig
from mmrlaif.config.selection import (
    BENCHMARK_SELECT_METRICS,
    LATEST_METRIC,
    TOY_SELECT_METRICS,
)
from mmrlaif.config.strict import ConfigError


@dataclass(frozen=True)
class PipelineConfig:
    """The iterative pipeline.

    Attributes:
        method: ``rlaifv`` (on-policy sampling + AI feedback) or ``povid``.
        iterations: Rounds of sample -> label -> pairs -> DPO -> evaluate, unrolled at compile
            time.
        select_metric: The figure that decides which policy an iteration carries forward (the
            new one or the incumbent). On the toy world's validation split: ``object_f1``
            (harmonic mean of 1 - ObjHal and Cover), ``object_hal``, ``response_hal`` (lower is
            better) or ``cover``. On a held-out slice of a real benchmark (the first
            ``select_items`` items of its data root in ``eval.benchmarks.data``, scored by the
            same code as the reports, which then leave those items out): a benchmark headline
            figure such as ``amber_object_f1`` / ``object_halbench_object_f1`` (harmonic mean
            of 1 - the mention-level hallucination rate and the object recall),
            ``object_halbench_response_hallucination_rate``, ``amber_chair``, ``mmhal_score``
            or ``pope_adversarial_f1`` (:data:`BENCHMARK_SELECT_METRICS`). ``latest`` carries the
            newly trained policy forward whatever it scores. A real model (a hub id) cannot
            select on the toy world: that is an error naming this key.
        select_items: Items of the selection benchmark's held-out slice (per POPE split).
        select_every: Also weigh the DPO run's intermediate checkpoints: one is saved every
            this many optimizer steps (a value below 1: that fraction of the run's steps, e.g.
            0.0625 = a quarter epoch of 4 epochs, the reference's grid), each is scored on the
            selection figure with the final model, and the best of them is the iteration's
            new policy (``null``: the final model only). Each checkpoint is a full model on
            the artifact store until the iteration ends.
        name: Pipeline name in KFP and the parent run's name prefix in MLflow.
        shards: RLAIF-V: split each iteration's prompts into this many shards, sampled and
            labeled by parallel tasks (``dsl.ParallelFor``) and merged before the pairs; the
            results do not depend on it (per-(prompt, sample) seeds).
        max_parallel_shards: Shards running at once (0: all).
        shard_cache: A folder or ``s3://`` prefix where each finished shard is kept under a
            key of its inputs (prompts, policy, settings); a rerun reuses finished shards and
            redoes only missing or partial ones (``null``: no reuse).
    """

    method: Literal["rlaifv", "povid"] = "rlaifv"
    iterations: int = 3
    select_metric: str = "object_f1"
    select_items: int = 100
    select_every: float | None = None
    name: str = "mmrlaif"
    shards: int = 1
    max_parallel_shards: int = 0
    shard_cache: str | None = None

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ConfigError(f"iterations: must be >= 1, got {self.iterations}")
        if self.shards < 1:
            raise ConfigError(f"shards must be >= 1, got {self.shards}")
        if self.max_parallel_shards < 0:
            raise ConfigError(f"max_parallel_shards must be >= 0, got {self.max_parallel_shards}")
        known = (*TOY_SELECT_METRICS, *BENCHMARK_SELECT_METRICS, LATEST_METRIC)
        if self.select_metric not in known:
            raise ConfigError(
                f"select_metric: unknown metric {self.select_metric!r}; one of {', '.join(known)}"
            )
        if self.select_items < 1:
            raise ConfigError(f"select_items: must be >= 1, got {self.select_items}")
        if self.select_every is not None and self.select_metric == LATEST_METRIC:
            raise ConfigError(
                "select_every: checkpoints are weighed by select_metric, and 'latest' weighs "
                "nothing (the final model goes on); pick a metric or drop select_every"
            )
        if self.select_every is not None and not (
            0 < self.select_every < 1 or float(self.select_every).is_integer()
        ):
            raise ConfigError(
                f"select_every: a whole number of steps or a fraction in (0, 1), "
                f"got {self.select_every}"
            )


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow tracking.

    Attributes:
        uri: Tracking URI; ``MLFLOW_TRACKING_URI`` in the environment wins; neither: a local
            store under the run folder (nothing to start).
        experiment: Experiment name.
        registered_model: Name the final policy is registered under (``null``: not registered).
        pairs_sample: Pairs logged per iteration with their claims and verdicts.
        register_iterations: Register every iteration's trained policy as a model version
            (tagged with its metrics and lineage), not only the final one.
        gate: The promotion gate run on the final policy.
    """

    uri: str | None = None
    experiment: str = "mmrlaif"
    registered_model: str | None = "mmrlaif-policy"
    pairs_sample: int = 20
    register_iterations: bool = True
    gate: GateConfig = field(default_factory=GateConfig)
