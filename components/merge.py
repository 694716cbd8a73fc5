"""Merge the shards of an iteration's sampling and labeling."""

from typing import List  # noqa: UP035 (KFP reads List[...] annotations)

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from mmrlaif.components._image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def merge_shards(
    samples: Input[List[Dataset]],  # noqa: UP006
    feedback: Input[List[Dataset]],  # noqa: UP006
    merged_samples: Output[Dataset],
    merged_feedback: Output[Dataset],
):
    """One samples and one feedback table from the shards' (rows sorted, stats summed)."""
    from mmrlaif.steps.merge import merge_step

    merge_step(
        [s.path for s in samples],
        [f.path for f in feedback],
        merged_samples.path,
        merged_feedback.path,
    )
