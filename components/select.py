"""Carry forward the better of the newly trained policy and the incumbent."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from mmrlaif.components._image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def select_policy(
    config: str,
    trained: Input[Model],
    trained_report: Input[Artifact],
    incumbent: Input[Model],
    incumbent_report: Input[Artifact],
    policy: Output[Model],
    report: Output[Artifact],
) -> bool:
    """Compare by ``pipeline.select_metric`` (the toy validation split or a held-out benchmark
    slice; the trained run's best candidate against the incumbent); True if the new one won."""
    from mmrlaif.config import parse_config
    from mmrlaif.steps.select import select_step

    decision = select_step(
        parse_config(config).pipeline.select_metric,
        trained.path,
        trained_report.path,
        incumbent.path,
        incumbent_report.path,
        policy.path,
        report.path,
    )
    return decision.keep_new
