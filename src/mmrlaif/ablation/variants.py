"""The ablation's variants: what each changes against the preset, as dotted config keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmrlaif.config import Config, ConfigError, from_dict, to_dict
from mmrlaif.config.strict import set_dotted

#: Stands for the world's strong labeler (:data:`CHECKER`) in a variant's value.
CHECKER_PATH = "{checker}"

#: The toy world's strong labeler, the analogue of the paper's larger open labeler (RLAIF-V's
#: 34B labeler of a 7B policy): fine-tuned once per world on the same training images as the
#: base policy, with six times the yes/no supervision and a decoder twice as deep. What it
#: changes against the preset (dotted keys); it shares the base policy's world seed, so its
#: training images are the base policy's (their captions drawn anew, as the yes/no questions
#: take their draws from the same stream) and its eval split is never trained on.
CHECKER: dict[str, Any] = {
    "world.yesno_per_image": 12,
    "model.tiny.text_layers": 4,
}

#: The strong labeler's settings in a run: it labels with RLAIF-V's own rule, a claim rejected
#: when P(no) >= P(yes) (the preset's stricter threshold is for the self-check).
_STRONG = {
    "labeling.labeler": "model",
    "labeling.labeler_name_or_path": CHECKER_PATH,
    "labeling.reject_threshold": 0.5,
}

#: One iteration with about the same total pair budget as the preset's N: N x the samples and
#: the pairs per prompt. ``{iterations}`` in a value is the preset's ``pipeline.iterations``.
_ONE_SHOT = {
    "pipeline.iterations": 1,
    "sampling.n": "{iterations}*sampling.n",
    "pairs.max_pairs_per_prompt": "{iterations}*pairs.max_pairs_per_prompt",
}

#: What each variant changes, against the preset (dotted keys).
VARIANTS: dict[str, dict[str, Any]] = {
    # the preset: N on-policy iterations, frozen labeler, DPO + SFT on chosen
    "iterative": {},
    # one iteration with about the same total pair budget
    "one_shot": _ONE_SHOT,
    # the current policy checks its own answers (its checker can erode)
    "self_labeler": {"labeling.labeler": "policy"},
    # the current policy checks its own answers, its check protected by yes/no replay
    "self_labeler_replay": {"labeling.labeler": "policy", "pairs.replay_yesno": 100},
    # plain DPO: no SFT term on the chosen answer
    "dpo_only": {"dpo.trainer.loss_type": ["sigmoid"], "dpo.trainer.loss_weights": [1.0]},
    # POVID pairs (ground-truth answers with injected hallucinations, noised images)
    "povid": {"pipeline.method": "povid"},
    # both: every RLAIF-V iteration adds the current policy's POVID pairs to its own
    "rlaifv_povid": {"pairs.add_povid": True},
    # the paper's main setting: a stronger labeler than the policy checks its claims
    "strong_labeler": _STRONG,
    # the same labeler, one iteration at the same pair budget
    "strong_labeler_one_shot": _ONE_SHOT | _STRONG,
}


def needs_checker(variant: str) -> bool:
    """Whether ``variant`` labels with the world's strong labeler."""
    return CHECKER_PATH in VARIANTS.get(variant, {}).values()


def variant_config(
    cfg: Config,
    variant: str,
    seed: int,
    out_dir: Path,
    base: Path | None,
    checker: Path | None = None,
) -> Config:
    """The preset with a variant's changes, a seed and its own output folder.

    Args:
        cfg: The preset.
        variant: A key of :data:`VARIANTS`.
        seed: The run's seed (``run``, ``model``, ``sampling``, ``pairs``, ``povid``).
        out_dir: The ablation's folder (the run goes to ``seed<seed>/<variant>`` in it).
        base: The seed's base policy folder (``None``: the preset's model).
        checker: The strong labeler's folder, for the variants that use it (``None``: left
            as :data:`CHECKER_PATH`, enough to check the config's shape).

    Raises:
        ConfigError: An unknown variant.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"unknown ablation variant {variant!r}; one of {', '.join(VARIANTS)}")
    data = to_dict(cfg)
    for key in ("run", "model", "sampling", "pairs", "povid"):
        data[key]["seed"] = seed
    for dotted, value in VARIANTS[variant].items():
        set_dotted(data, dotted, _resolve(value, cfg, checker))
    data["run"]["output_dir"] = str(out_dir / f"seed{seed}" / variant)
    if base is not None:
        data["model"]["name_or_path"] = str(base)
    return from_dict(Config, data)


def checker_config(cfg: Config, out_dir: Path) -> Config:
    """The strong labeler's fine-tuning (and evaluation) config: the preset's world, model, SFT
    and eval sections with :data:`CHECKER`, their seeds the preset's, its folder
    ``<out_dir>/checker``."""
    data = to_dict(cfg)
    data = {key: data[key] for key in ("run", "world", "model", "sft", "eval")}
    for dotted, value in CHECKER.items():
        set_dotted(data, dotted, value)
    data["run"]["output_dir"] = str(out_dir / "checker")
    return from_dict(Config, data)


def _resolve(value: Any, cfg: Config, checker: Path | None) -> Any:
    """``"{iterations}*section.key"``: the preset's iterations times another preset value;
    :data:`CHECKER_PATH`: the strong labeler's folder, when known."""
    if isinstance(value, str) and value.startswith("{iterations}*"):
        section, key = value.split("*", 1)[1].split(".")
        return cfg.pipeline.iterations * getattr(getattr(cfg, section), key)
    if value == CHECKER_PATH and checker is not None:
        return str(checker)
    return value
