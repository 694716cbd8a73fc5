"""RLAIF-V: N on-policy iterations of sample -> label -> pairs -> DPO -> evaluate -> select."""

from typing import Any

from kfp import dsl
from kfp.dsl import Artifact

from mmrlaif.components.label import label
from mmrlaif.components.merge import merge_shards
from mmrlaif.components.pairs import build_pairs
from mmrlaif.components.sample import sample
from mmrlaif.components.track import log_rlaifv_iteration
from mmrlaif.config import Config
from mmrlaif.pipelines.common import (
    LocalRun,
    Start,
    configure_local,
    finish,
    start,
    train_and_select,
)
from mmrlaif.pipelines.kube import configure_all


def rlaif_v_pipeline(
    cfg: Config,
    config_text: str,
    on_kubernetes: bool = True,
    local_run: LocalRun | None = None,
):
    """The RLAIF-V pipeline function for ``cfg`` (``pipeline.iterations`` unrolled).

    Args:
        cfg: The configuration (its values decide the shape: iterations, Kubernetes settings).
        config_text: Default of the ``config`` parameter (the same config as one-line JSON).
        on_kubernetes: Apply ``cfg.kubernetes`` to the tasks (off for ``kfp.local`` runs).
        local_run: A local run's key and checkpoint root: cache the tasks under its key.

    (No ``from __future__ import annotations`` here: KFP reads the annotations as types.)
    """
    iterations = cfg.pipeline.iterations

    @dsl.pipeline(
        name=f"{cfg.pipeline.name}-rlaif-v",
        description="RLAIF-V: iterative on-policy DPO on AI feedback (self-feedback or a labeler).",
    )
    def rlaif_v(config: str = config_text, run_date: str = "") -> Artifact:
        s: Start = start(config, run_date, cfg)
        policy, report, history = s.policy, s.report, s.history
        for i in range(1, iterations + 1):
            samples, feedback = sample_and_label(config, cfg, i, policy, s)
            paired = build_pairs(
                config=config, iteration=i, feedback=feedback, world=s.world, policy=policy
            )
            step = train_and_select(
                config, cfg, i, policy, report, paired.outputs["pairs"], s.world
            )
            logged = log_rlaifv_iteration(
                config=config,
                run_id=s.run_id,
                iteration=i,
                history=history,
                report=step.report,
                candidate_report=step.candidate_report,
                samples=samples,
                feedback=feedback,
                pairs=paired.outputs["pairs"],
                trained=step.trained,
            )
            paired.set_display_name(f"iteration {i}: pairs")
            logged.set_display_name(f"iteration {i}: log").set_caching_options(False)
            policy, report, history = step.policy, step.report, logged.output
        summary = finish(config, s, history, policy, report)
        if on_kubernetes:
            configure_all(cfg)
        if local_run is not None:
            configure_local(local_run)
        return summary

    return rlaif_v


def sample_and_label(config: Any, cfg: Config, iteration: int, policy: Any, s: Start):
    """Sample and label an iteration's prompts: one task each, or with ``pipeline.shards`` > 1
    one per shard in a ``dsl.ParallelFor`` merged by one task. Returns (samples, feedback)."""

    def one(shard: Any, suffix: str):
        sampled = sample(
            config=config, iteration=iteration, policy=policy, world=s.world, shard=shard
        )
        labeled = label(
            config=config,
            policy=policy,
            initial_policy=s.policy,
            world=s.world,
            samples=sampled.outputs["samples"],
        )
        # fresh samples and verdicts every run, even with the same config and policy path
        # (pipeline.shard_cache is the way to reuse finished shards)
        for task, name in ((sampled, "sample"), (labeled, "label")):
            task.set_display_name(f"iteration {iteration}: {name}{suffix}")
            task.set_caching_options(False)
        return sampled.outputs["samples"], labeled.outputs["feedback"]

    shards = cfg.pipeline.shards
    if shards == 1:
        return one(0, "")
    with dsl.ParallelFor(
        items=list(range(shards)), parallelism=cfg.pipeline.max_parallel_shards
    ) as shard:
        samples, feedback = one(shard, " (shard)")
    merged = merge_shards(samples=dsl.Collected(samples), feedback=dsl.Collected(feedback))
    merged.set_display_name(f"iteration {iteration}: merge shards").set_caching_options(False)
    return merged.outputs["merged_samples"], merged.outputs["merged_feedback"]
