"""Deconfounded sampling: n candidates per prompt from the current policy."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from mmrlaif.components._image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def sample(
    config: str,
    iteration: int,
    policy: Input[Model],
    world: Input[Dataset],
    samples: Output[Dataset],
    metrics: Output[Metrics],
    shard: int = 0,
):
    """Sample ``sampling.n`` answers per align prompt (of shard ``shard`` when the prompts are
    sharded); seeds derive from the iteration."""
    from mmrlaif.artifacts import log_metrics
    from mmrlaif.config import parse_config
    from mmrlaif.steps.sample import sample_step

    cfg = parse_config(config)
    stats = sample_step(cfg, iteration, policy.path, world.path, samples.path, shard)
    log_metrics(
        metrics,
        {
            "samples": stats.samples_out,
            "tokens_per_second": stats.tokens_per_second,
            "endpoint_requests": stats.requests,
            "endpoint_retries": stats.retries,
        },
    )
