"""The pairs stages: RLAIF-V (feedback + prompts in) and POVID (prompts + policy in); both
write the pairs table in TRL's layout."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mmrlaif.config import ConfigError, ModelConfig, PairsConfig, POVIDConfig
from mmrlaif.io import read_rows, write_table
from mmrlaif.pairs.rlaifv import PairStats, build_pairs, candidates_from_rows
from mmrlaif.pairs.table import NoiseSpec, pair_row, rlaifv_rows
from mmrlaif.toyworld import toy_lexicon


def pairs_stage(
    cfg: PairsConfig,
    feedback_table: str | Path,
    prompts_table: str | Path,
    pairs_table: str | Path,
) -> PairStats:
    """Build RLAIF-V pairs from scored candidates and write the pairs table."""
    pairs, stats = build_pairs(
        candidates_from_rows(read_rows(feedback_table)),
        seed=cfg.seed,
        min_gap=cfg.min_gap,
        max_pairs_per_prompt=cfg.max_pairs_per_prompt,
        balance_lengths=cfg.balance_lengths,
    )
    write_table(rlaifv_rows(pairs, read_rows(prompts_table)), pairs_table)
    return stats


@dataclass(frozen=True)
class POVIDStats:
    """Counts of a POVID pairs build.

    Attributes:
        prompts_in: Prompts read.
        pairs_out: Pairs written, all sources.
        by_source: Pairs per source.
        skips: Skipped prompts by ``<source>/<reason>``.
    """

    prompts_in: int
    pairs_out: int
    by_source: dict[str, int] = field(default_factory=dict)
    skips: dict[str, int] = field(default_factory=dict)


def make_injector(cfg: POVIDConfig, model_cfg: ModelConfig, world_summary: str | Path | None):
    """The configured hallucination injector.

    The ``llm`` injector's LLM is loaded here from ``povid.llm_name_or_path``, or, when
    ``povid.llm_endpoint`` is set, called at ``<llm_endpoint>/chat/completions`` under that
    served name (nothing is loaded then); greedy, through the model's chat template.

    Raises:
        ConfigError: Naming the key when the injector lacks its model or co-occurrence data.
    """
    # lazy: torch and transformers only for the POVID paths that load a model
    from mmrlaif.pairs.povid import CooccurrenceInjector, LLMInjector

    if cfg.injector == "llm":
        if not cfg.llm_name_or_path:
            what = "served model name at povid.llm_endpoint" if cfg.llm_endpoint else "LLM"
            raise ConfigError(f"povid.llm_name_or_path is required for injector 'llm' (its {what})")
        # lazy: torch and transformers only for the POVID paths that load a model
        from mmrlaif.labeling.llm import text_generators

        generators = text_generators(
            cfg.llm_name_or_path, cfg.llm_endpoint, model_cfg.trust_remote_code
        )
        return LLMInjector(generators)
    if world_summary is None or not Path(world_summary).is_file():
        raise ConfigError(
            "povid.injector 'cooccurrence' needs the world's co-occurrence statistics "
            f"(world.json), not found at {world_summary}"
        )
    cooccurrence = json.loads(Path(world_summary).read_text())["cooccurrence"]
    return CooccurrenceInjector(toy_lexicon(), cooccurrence)


def povid_stage(
    model_cfg: ModelConfig,
    cfg: POVIDConfig,
    policy: str | Path,
    prompts_table: str | Path,
    pairs_table: str | Path,
    world_summary: str | Path | None = None,
    eval_batch_size: int = 32,
) -> POVIDStats:
    """Build POVID pairs (chosen = the ground-truth answer) and write the pairs table.

    With ``povid.noise_rejection: online`` the ``povid_noise`` rows hold a placeholder (the
    rejected answer is built at training time) and the policy is not loaded here.

    Args:
        model_cfg: Loading settings of the policy.
        cfg: Which sources, the injector, the noise step and the seed.
        policy: The policy that answers on noised images (offline ``povid_noise``).
        prompts_table: Prompts with a ground-truth ``answer`` and ``objects``.
        pairs_table: Where the pairs go.
        world_summary: ``world.json`` with co-occurrence statistics (``cooccurrence`` injector).
        eval_batch_size: Images per generation batch.
    """
    unknown = sorted(set(cfg.sources) - {"povid_text", "povid_noise"})
    if unknown or not cfg.sources:
        raise ConfigError(f"povid.sources: {unknown or 'empty'} (use povid_text, povid_noise)")
    # lazy: torch and transformers only for the POVID paths that load a model
    from mmrlaif.pairs.povid import noise_rows, online_noise_rows, text_injection_rows

    prompts = read_rows(prompts_table)
    rows: list[dict] = []
    skips: dict[str, int] = {}
    if "povid_text" in cfg.sources:
        injector = make_injector(cfg, model_cfg, world_summary)
        text, text_skips = text_injection_rows(prompts, injector, cfg.seed)
        rows += text
        skips |= {f"povid_text/{k}": v for k, v in text_skips.items()}
    if "povid_noise" in cfg.sources and cfg.noise_rejection == "online":
        spec = NoiseSpec(cfg.noise_step, cfg.clamp_noise, cfg.noise_ref_tokens)
        noise, noise_skips = online_noise_rows(prompts, spec)
        rows += noise
        skips |= {f"povid_noise/{k}": v for k, v in noise_skips.items()}
    elif "povid_noise" in cfg.sources:
        # lazy: torch and transformers only for the POVID paths that load a model
        from mmrlaif.models.load import load_vlm

        model, processor = load_vlm(
            str(policy), model_cfg.dtype, model_cfg.trust_remote_code, family=model_cfg.family
        )
        noise, noise_skips = noise_rows(
            model,
            processor,
            prompts,
            cfg.seed,
            cfg.noise_step,
            cfg.max_new_tokens,
            eval_batch_size,
            cfg.clamp_noise,
        )
        rows += noise
        skips |= {f"povid_noise/{k}": v for k, v in noise_skips.items()}
    write_table(rows, pairs_table)
    by_source = dict(Counter(r["source"] for r in rows))
    return POVIDStats(len(prompts), len(rows), by_source, skips)


def yesno_replay_rows(sft_rows: list[dict], count: int, seed: int) -> list[dict]:
    """``count`` yes/no questions of the SFT data as pairs (chosen: the right answer), drawn
    with ``seed``; fewer when the data has fewer."""

    yesno = [r for r in sft_rows if r["kind"] == "yesno"]
    picked = random.Random(seed).sample(yesno, min(count, len(yesno)))
    other = {"Yes": "No", "No": "Yes"}
    return [
        pair_row(
            {"prompt_id": r["example_id"], "question": r["question"], "image": r["image"]},
            r["answer"],
            other[r["answer"]],
            "replay_yesno",
        )
        for r in picked
    ]
