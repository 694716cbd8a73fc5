"""The build-pairs and povid-pairs components' steps: one iteration's pairs from
pipeline artifacts (pairs.parquet, stats.json)."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from mmrlaif import artifacts
from mmrlaif.artifacts import iteration_seed
from mmrlaif.config import Config, ConfigError
from mmrlaif.config.povid import povid_iteration
from mmrlaif.io import read_rows, write_table
from mmrlaif.pairs.rlaifv import PairStats
from mmrlaif.pairs.stage import POVIDStats, pairs_stage, povid_stage, yesno_replay_rows
from mmrlaif.toyworld import WorldPaths


def pairs_step(
    cfg: Config,
    iteration: int,
    feedback_dir: str | Path,
    world_dir: str | Path,
    out_dir: str | Path,
    policy_run: str | Path | None = None,
) -> PairStats:
    """One iteration's RLAIF-V pairs from pipeline artifacts (``pairs.parquet``, ``stats.json``).

    With ``pairs.replay_yesno`` the SFT data's yes/no questions join them (only when there are
    RLAIF-V pairs); with ``pairs.add_povid`` the POVID pairs of ``policy_run`` join them.

    Raises:
        ConfigError: ``pairs.add_povid`` without ``policy_run``.
    """
    pairs_cfg = replace(cfg.pairs, seed=iteration_seed(cfg.pairs.seed, iteration))
    world = WorldPaths(Path(world_dir))
    table = artifacts.table(out_dir, "pairs")
    stats = pairs_stage(
        pairs_cfg, artifacts.table(feedback_dir, "feedback"), world.prompts("align"), table
    )
    extra: list[dict] = []
    if pairs_cfg.replay_yesno and stats.pairs_out:  # never turns "no pairs" into training
        extra += yesno_replay_rows(read_rows(world.sft), pairs_cfg.replay_yesno, pairs_cfg.seed)
        stats = replace(stats, replayed_yesno=len(extra))
    if pairs_cfg.add_povid:
        if policy_run is None:
            raise ConfigError("pairs.add_povid needs the current policy (policy_run)")
        with tempfile.TemporaryDirectory() as tmp:
            povid = povid_step(cfg, iteration, policy_run, world_dir, tmp)
            extra += read_rows(artifacts.table(tmp, "pairs"))
        stats = replace(stats, added_povid=povid.by_source)
    if extra:
        write_table(read_rows(table) + extra, table)
    artifacts.write_stats(out_dir, stats)
    return stats


def povid_step(
    cfg: Config, iteration: int, policy_run: str | Path, world_dir: str | Path, out_dir: str | Path
) -> POVIDStats:
    """One iteration's POVID pairs from pipeline artifacts (``pairs.parquet``, ``stats.json``);
    with ``povid.stages``, the sources of the iteration's stage."""
    cfg = povid_iteration(cfg, iteration)
    world = WorldPaths(Path(world_dir))
    stats = povid_stage(
        cfg.model,
        replace(cfg.povid, seed=iteration_seed(cfg.povid.seed, iteration)),
        artifacts.model_dir(policy_run),
        world.prompts("align"),
        artifacts.table(out_dir, "pairs"),
        world.summary,
        cfg.eval.batch_size,
    )
    artifacts.write_stats(out_dir, stats)
    return stats
