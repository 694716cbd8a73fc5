"""POVID's section (``povid``: its pair sources and its schedule of stages), the stage an
iteration runs, and the checks that tie ``povid.*`` to the other sections.

POVID trains in two stages (the reference's ``scripts/run_dpo.sh`` then
``scripts/run_povid.sh``): text rejections only, then both sources, each stage starting from the
previous one's merged model. Here stage ``i`` is iteration ``i`` of the POVID pipeline:
:func:`povid_iteration` resolves the configuration an iteration's tasks run with (its pair
sources and its DPO epochs), and :func:`check_povid` refuses, when the configuration loads, a
schedule that does not fit the pipeline.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mmrlaif.config.strict import ConfigError

if TYPE_CHECKING:
    from mmrlaif.config import Config

#: The POVID pair sources.
POVID_SOURCES: tuple[str, ...] = ("povid_text", "povid_noise")


def _check_sources(sources: tuple[str, ...]) -> None:
    unknown = sorted(set(sources) - set(POVID_SOURCES))
    if unknown or not sources:
        what = f"unknown {', '.join(unknown)}" if unknown else "empty"
        raise ConfigError(f"sources: {what} (use {', '.join(POVID_SOURCES)})")


@dataclass(frozen=True)
class POVIDStageConfig:
    """One stage of POVID's schedule: one iteration of the POVID pipeline.

    Attributes:
        sources: The rejected answers of the stage (``povid_text``, ``povid_noise``).
        num_train_epochs: DPO epochs of the stage (replaces ``dpo.trainer.num_train_epochs``).
    """

    sources: tuple[str, ...] = POVID_SOURCES
    num_train_epochs: float = 1.0

    def __post_init__(self) -> None:
        _check_sources(self.sources)
        if not self.num_train_epochs > 0:
            raise ConfigError(f"num_train_epochs: must be > 0, got {self.num_train_epochs}")


@dataclass(frozen=True)
class POVIDConfig:
    """POVID pair sources.

    Attributes:
        sources: Which rejected answers to build: ``povid_text`` (hallucinations injected into
            the ground-truth answer) and/or ``povid_noise`` (the policy's answer on a
            diffusion-noised image).
        injector: ``cooccurrence`` (inserts a co-occurring absent object; no LLM needed) or
            ``llm`` (an instruct LLM rewrites the answer, as the paper's GPT-4V step).
        llm_name_or_path: The instruct LLM of the ``llm`` injector (its served name when
            ``llm_endpoint`` is set).
        llm_endpoint: Base URL of an OpenAI-compatible API serving that LLM (e.g. vLLM's
            ``http://host:8000/v1``): the ``llm`` injector then calls
            ``<llm_endpoint>/chat/completions`` (greedy) with model ``llm_name_or_path`` instead of
            loading it; API key from the ``OPENAI_API_KEY`` environment variable, if set.
            ``None``: load it in-process.
        noise_step: Forward-diffusion step of the image noise (the paper: 500 of 1000).
        noise_rejection: How the ``povid_noise`` rejected answer is built. ``online`` (the
            reference's ``tool/dpo_trainer_inherent.py``): at every DPO step the image is
            noised afresh (a new draw every epoch, seeded from the run seed, the epoch and the
            prompt), the model is run teacher-forced on the ground-truth answer with the
            noised image, and the per-position arg-max tokens are the rejected answer (the
            chosen answer's length), scored with the clean image at the chosen answer's
            positions; the pairs table then holds a ``povid_noise`` row with an empty
            ``rejected``. ``offline``: the policy answers the noised image greedily when the
            pairs are built (at most ``max_new_tokens``) and that answer is the rejected one.
        noise_ref_tokens: Online: the tokens the reference model scores for the noise
            rejection: ``own`` (its own arg-max under the same noised image, as the reference
            code, which runs the same teacher-forced pass through each model) or ``policy``
            (the policy's arg-max, so both models score one rejected answer).
        clamp_noise: Clip the noised pixels to [0, 1] before the 8-bit conversion. The
            reference does not (``ToPILImage`` of the unclipped tensor: about a third of the
            pixels wrap around, e.g. -0.3 / 255 becomes 0 and -1.5 / 255 becomes 255); ``true``
            is a milder noise.
        max_new_tokens: Offline: generation budget of the answer on the noised image.
        seed: Seed of the injections and of the offline noise (the online noise derives from
            the DPO run's seed).
        stages: POVID's schedule, one stage per iteration of the POVID pipeline (iteration i
            runs stage i: its sources and its DPO epochs); the length must equal
            ``pipeline.iterations``. Empty: every iteration uses ``sources`` and
            ``dpo.trainer``'s epochs.
    """

    sources: tuple[str, ...] = ("povid_text", "povid_noise")
    injector: Literal["cooccurrence", "llm"] = "cooccurrence"
    llm_name_or_path: str | None = None
    llm_endpoint: str | None = None
    noise_step: int = 500
    noise_rejection: Literal["online", "offline"] = "online"
    noise_ref_tokens: Literal["own", "policy"] = "own"
    clamp_noise: bool = False
    max_new_tokens: int = 48
    seed: int = 0
    stages: tuple[POVIDStageConfig, ...] = ()

    def __post_init__(self) -> None:
        _check_sources(self.sources)
        if not 0 <= self.noise_step < 1000:
            raise ConfigError(f"noise_step: must be in [0, 1000), got {self.noise_step}")


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
