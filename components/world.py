"""Prepare the data: generate the toy world's tables."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from mmrlaif.components._image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def prepare_world(config: str, world: Output[Dataset]):
    """Generate the toy world (SFT data, align / val / eval prompts, POPE questions)."""
    from mmrlaif.config import parse_config
    from mmrlaif.toyworld import build_world

    build_world(parse_config(config).world, world.path)
