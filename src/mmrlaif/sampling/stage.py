"""The sampling stage: policy + prompts table in, samples table out."""

from __future__ import annotations

from pathlib import Path

from mmrlaif.config import ModelConfig, SamplingConfig
from mmrlaif.io import read_rows, write_table
from mmrlaif.sampling.backends import make_backend
from mmrlaif.sampling.sampler import SamplingStats


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
