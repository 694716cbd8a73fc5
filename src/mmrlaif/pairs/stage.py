"""The pairs stage: feedback + prompts tables in, pairs table (TRL layout) out."""

from __future__ import annotations

from pathlib import Path

from mmrlaif.config import PairsConfig
from mmrlaif.io import read_rows, write_table
from mmrlaif.pairs.rlaifv import PairStats, build_pairs, candidates_from_rows
from mmrlaif.pairs.table import rlaifv_rows


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
