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
):
    """Sample ``sampling.n`` answers per align prompt; seeds derive from the iteration."""
    from mmrlaif.config import parse_config
    from mmrlaif.sampling.stage import sample_step

    stats = sample_step(parse_config(config), iteration, policy.path, world.path, samples.path)
    metrics.log_metric("samples", stats.samples_out)
    metrics.log_metric("tokens_per_second", stats.tokens_per_second)
