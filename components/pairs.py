"""Preference pairs: RLAIF-V rules over the feedback, or POVID sources."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from mmrlaif.components._image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def build_pairs(
    config: str,
    iteration: int,
    feedback: Input[Dataset],
    world: Input[Dataset],
    policy: Input[Model],
    pairs: Output[Dataset],
    metrics: Output[Metrics],
):
    """RLAIF-V pairs: score gap >= min_gap, at most k per prompt, length-balanced (plus the
    policy's POVID pairs with ``pairs.add_povid``)."""
    from mmrlaif.artifacts import log_metrics
    from mmrlaif.config import parse_config
    from mmrlaif.steps.pairs import pairs_step

    stats = pairs_step(
        parse_config(config), iteration, feedback.path, world.path, pairs.path, policy.path
    )
    added = {f"pairs_{source}": n for source, n in stats.added_povid.items()}
    log_metrics(metrics, {"pairs": stats.pairs_out, **added})


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def povid_pairs(
    config: str,
    iteration: int,
    policy: Input[Model],
    world: Input[Dataset],
    pairs: Output[Dataset],
    metrics: Output[Metrics],
):
    """POVID pairs: the truth vs injected hallucinations / the policy's answer on noise."""
    from mmrlaif.artifacts import log_metrics
    from mmrlaif.config import parse_config
    from mmrlaif.steps.pairs import povid_step

    stats = povid_step(parse_config(config), iteration, policy.path, world.path, pairs.path)
    log_metrics(metrics, {"pairs": stats.pairs_out})
