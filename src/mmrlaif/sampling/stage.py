"""The sampling stage: policy + prompts table in, samples table out."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mmrlaif import artifacts
from mmrlaif.artifacts import iteration_seed
from mmrlaif.config import Config, ModelConfig, SamplingConfig
from mmrlaif.io import read_rows, write_table
from mmrlaif.sampling.backends import make_backend
from mmrlaif.sampling.sampler import SamplingStats
from mmrlaif.toyworld import WorldPaths


def sample_stage(
    policy: str | Path,
    model_cfg: ModelConfig,
    cfg: SamplingConfig,
    prompts_table: str | Path,
    samples_table: str | Path,
) -> SamplingStats:
    """Sample ``cfg.n`` candidates per prompt from the policy and write the samples table."""
    backend = make_backend(policy, model_cfg, cfg)
    rows, stats = backend.sample(read_rows(prompts_table), cfg)
    write_table(rows, samples_table)
    return stats


def sample_step(
    cfg: Config, iteration: int, policy_run: str | Path, world_dir: str | Path, out_dir: str | Path
) -> SamplingStats:
    """One iteration's sampling from pipeline artifacts: the align prompts, fresh seeds.

    Writes ``samples.parquet`` and ``stats.json`` under ``out_dir``.
    """
    sampling = replace(cfg.sampling, seed=iteration_seed(cfg.sampling.seed, iteration))
    stats = sample_stage(
        artifacts.model_dir(policy_run),
        cfg.model,
        sampling,
        WorldPaths(Path(world_dir)).prompts("align"),
        artifacts.table(out_dir, "samples"),
    )
    artifacts.write_stats(out_dir, stats)
    return stats
