"""Divide-and-conquer AI feedback on the sampled answers."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from mmrlaif.components._image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def label(
    config: str,
    policy: Input[Model],
    initial_policy: Input[Model],
    world: Input[Dataset],
    samples: Input[Dataset],
    feedback: Output[Dataset],
    metrics: Output[Metrics],
):
    """Split answers into claims, ask the labeler a yes/no question per claim, score answers."""
    from mmrlaif.artifacts import log_metrics
    from mmrlaif.config import parse_config
    from mmrlaif.steps.label import label_step

    stats = label_step(
        parse_config(config),
        policy.path,
        initial_policy.path,
        world.path,
        samples.path,
        feedback.path,
    )
    log_metrics(metrics, {"claims": stats.claims, "questions_answered": stats.questions_answered})
