"""The sampling stage: policy + prompts table in, samples table out."""

from __future__ import annotations

from pathlib import Path

from mmrlaif.config import ModelConfig, SamplingConfig
from mmrlaif.io import read_rows, write_table
from mmrlaif.models.load import load_vlm
from mmrlaif.sampling.sampler import SamplingStats, sample_candidates


def sample_stage(
    policy: str | Path,
    model_cfg: ModelConfig,
    cfg: SamplingConfig,
    prompts_table: str | Path,
    samples_table: str | Path,
) -> SamplingStats:
    """Sample ``cfg.n`` candidates per prompt from the policy and write the samples table."""
    model, processor = load_vlm(policy, model_cfg.dtype, model_cfg.trust_remote_code)
    rows, stats = sample_candidates(model, processor, read_rows(prompts_table), cfg, str(policy))
    write_table(rows, samples_table)
    return stats
