"""POVID's schedule across the pipeline: which stage an iteration runs, and the checks that
tie ``povid.*`` to the other sections.

POVID trains in two stages (the reference's ``scripts/run_dpo.sh`` then
``scripts/run_povid.sh``): text rejections only, then both sources, each stage starting from the
previous one's merged model. Here stage ``i`` is iteration ``i`` of the POVID pipeline:
:func:`povid_iteration` resolves the configuration an iteration's tasks run with (its pair
sources and its DPO epochs), and :func:`check_povid` refuses, when the configuration loads, a
schedule that does not fit the pipeline.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from mmrlaif.config.strict import ConfigError

if TYPE_CHECKING:
    from mmrlaif.config import Config

#: DPO loss types the online noise rejection's loss implements (TRL's definitions).
ONLINE_LOSS_TYPES: tuple[str, ...] = ("sigmoid", "sft")


def builds_povid(cfg: Config) -> bool:
    """Whether the pipeline builds POVID pairs (the POVID method, or RLAIF-V + POVID)."""
    return cfg.pipeline.method == "povid" or cfg.pairs.add_povid


def online_noise(cfg: Config) -> bool:
    """Whether some iteration trains on online noise rejections."""
    if not builds_povid(cfg) or cfg.povid.noise_rejection != "online":
        return False
    sources = [cfg.povid.sources] + [s.sources for s in cfg.povid.stages]
    return any("povid_noise" in one for one in sources)


def check_povid(cfg: Config) -> None:
    """The POVID schedule against the pipeline, and the online loss against ``dpo.trainer``.

    Raises:
        ConfigError: Naming the key: stages without the POVID method, a stage count other than
            ``pipeline.iterations``, or an online noise rejection with a loss type it does not
            implement.
    """
    stages = cfg.povid.stages
    if stages and cfg.pipeline.method != "povid":
        raise ConfigError(
            "povid.stages: the stages are the iterations of the POVID pipeline; set "
            f"pipeline.method: povid (got {cfg.pipeline.method!r})"
        )
    if stages and len(stages) != cfg.pipeline.iterations:
        raise ConfigError(
            f"povid.stages: {len(stages)} stage(s) but pipeline.iterations is "
            f"{cfg.pipeline.iterations} (iteration i runs stage i)"
        )
    if online_noise(cfg):
        loss_type = cfg.dpo.trainer.get("loss_type", ["sigmoid"])
        loss_types = [loss_type] if isinstance(loss_type, str) else list(loss_type)
        unsupported = [t for t in loss_types if t not in ONLINE_LOSS_TYPES]
        if unsupported:
            raise ConfigError(
                f"dpo.trainer.loss_type: {', '.join(map(str, unsupported))} with "
                "povid.noise_rejection 'online' (its loss implements "
                f"{', '.join(ONLINE_LOSS_TYPES)}); use those or noise_rejection: offline"
            )


def povid_iteration(cfg: Config, iteration: int) -> Config:
    """The configuration iteration ``iteration`` (1-based) runs with.

    With ``povid.stages`` (POVID pipeline), stage ``iteration`` sets ``povid.sources`` and
    ``dpo.trainer.num_train_epochs``; otherwise ``cfg`` is returned unchanged. Applying it
    twice gives the same configuration (the stages are kept).

    Raises:
        ConfigError: If ``iteration`` has no stage.
    """
    stages = cfg.povid.stages
    if not stages or cfg.pipeline.method != "povid":
        return cfg
    if not 1 <= iteration <= len(stages):
        raise ConfigError(
            f"povid.stages: no stage for iteration {iteration} ({len(stages)} stage(s))"
        )
    stage = stages[iteration - 1]
    trainer = dict(cfg.dpo.trainer) | {"num_train_epochs": stage.num_train_epochs}
    return dataclasses.replace(
        cfg,
        povid=dataclasses.replace(cfg.povid, sources=stage.sources),
        dpo=dataclasses.replace(cfg.dpo, trainer=trainer),
    )
