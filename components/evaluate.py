"""Hallucination metrics of a policy on the held-out eval split and on validation."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from mmrlaif.components._image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def evaluate(
    config: str,
    policy: Input[Model],
    world: Input[Dataset],
    report: Output[Artifact],
    metrics: Output[Metrics],
):
    """ObjHal, RespHal, Cover and POPE on the eval split; CHAIR on validation."""
    from mmrlaif.artifacts import log_metrics
    from mmrlaif.config import parse_config
    from mmrlaif.steps.evaluate import evaluate_step

    held_out, _ = evaluate_step(parse_config(config), policy.path, world.path, report.path)
    log_metrics(metrics, held_out.headline())
