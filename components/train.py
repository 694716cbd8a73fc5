"""DPO training of one iteration."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from mmrlaif.components._image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def train_dpo(
    config: str,
    iteration: int,
    policy: Input[Model],
    pairs: Input[Dataset],
    trained: Output[Model],
    metrics: Output[Metrics],
):
    """DPO from the iteration's starting policy (also the reference) on its pairs."""
    from mmrlaif.config import parse_config
    from mmrlaif.training.dpo import dpo_step

    result = dpo_step(parse_config(config), iteration, policy.path, pairs.path, trained.path)
    metrics.log_metric("pairs", result.n_pairs)
    metrics.log_metric("seconds", result.seconds)
