"""POVID: chosen = the truth; rejected = injected hallucinations / the policy's answer on noise."""

from typing import Any

from mmrlaif.components.pairs import povid_pairs
from mmrlaif.components.track import log_povid_iteration
from mmrlaif.config import Config
from mmrlaif.pipelines.skeleton import LocalRun, Method, Pairs, Start, method_pipeline


def _pairs(config: Any, cfg: Config, iteration: int, policy: Any, s: Start) -> Pairs:
    """POVID's part of the pipeline: the iteration's pairs from the truth and the policy."""
    paired = povid_pairs(config=config, iteration=iteration, policy=policy, world=s.world)
    paired.set_display_name(f"iteration {iteration}: povid pairs")
    return Pairs(paired.outputs["pairs"], {})


POVID = Method(
    name="povid",
    description="POVID: DPO on ground truth vs injected and noise-induced hallucinations.",
    pairs=_pairs,
    log=log_povid_iteration,
)


def povid_pipeline(
    cfg: Config,
    config_text: str,
    on_kubernetes: bool = True,
    local_run: LocalRun | None = None,
):
    """The POVID pipeline function for ``cfg`` (arguments as
    :func:`mmrlaif.pipelines.skeleton.method_pipeline`)."""
    return method_pipeline(POVID, cfg, config_text, on_kubernetes, local_run)
