"""The pipeline's starting policy: the toy world's SFT base, or an imported model."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from mmrlaif.components._image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def base_policy(
    config: str, world: Input[Dataset], policy: Output[Model], metrics: Output[Metrics]
):
    """Fine-tune the tiny base policy on the world (``model.name_or_path: null``) or import one."""
    from mmrlaif.artifacts import log_metrics
    from mmrlaif.config import parse_config
    from mmrlaif.steps.base_policy import base_policy_step

    cfg = parse_config(config)
    result = base_policy_step(cfg, world.path, policy.path)
    log_metrics(metrics, {"sft_seconds": result.seconds, "sft_examples": result.n_examples})
