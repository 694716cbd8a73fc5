"""RLAIF-V: N on-policy iterations of sample -> label -> pairs -> DPO -> evaluate -> select."""

from typing import Any

from kfp import dsl

from mmrlaif.components.label import label
from mmrlaif.components.merge import merge_shards
from mmrlaif.components.pairs import build_pairs
from mmrlaif.components.sample import sample
from mmrlaif.components.track import log_rlaifv_iteration
from mmrlaif.config import Config
from mmrlaif.pipelines.skeleton import LocalRun, Method, Pairs, Start, method_pipeline


def _pairs(config: Any, cfg: Config, iteration: int, policy: Any, s: Start) -> Pairs:
    """RLAIF-V's part of the pipeline: sample, label and pair from the iteration's policy."""
    samples, feedback = sample_and_label(config, cfg, iteration, policy, s)
    paired = build_pairs(
        config=config, iteration=iteration, feedback=feedback, world=s.world, policy=policy
    )
    paired.set_display_name(f"iteration {iteration}: pairs")
    return Pairs(paired.outputs["pairs"], {"samples": samples, "feedback": feedback})


RLAIF_V = Method(
    name="rlaifv",
    description="RLAIF-V: iterative on-policy DPO on AI feedback (self-feedback or a labeler).",
    pairs=_pairs,
    log=log_rlaifv_iteration,
)


def rlaifv_pipeline(
    cfg: Config,
    config_text: str,
    on_kubernetes: bool = True,
    local_run: LocalRun | None = None,
):
    """The RLAIF-V pipeline function for ``cfg`` (arguments as
    :func:`mmrlaif.pipelines.skeleton.method_pipeline`)."""
    return method_pipeline(RLAIF_V, cfg, config_text, on_kubernetes, local_run)


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
