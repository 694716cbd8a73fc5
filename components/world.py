"""Prepare the data: generate the toy world's tables."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from mmrlaif.components._image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def prepare_world(config: str, world: Output[Dataset], shape: str = ""):
    """Generate the toy world (SFT data, align / val / eval prompts, POPE questions); the
    align prompts come from ``data.align_prompts`` when it is set. ``shape`` is the compiled
    pipeline's shape: a runtime config of another shape stops the run here."""
    from mmrlaif.config import parse_config
    from mmrlaif.steps.world import world_step

    world_step(parse_config(config), world.path, shape)
