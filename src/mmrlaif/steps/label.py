"""The ``label`` component's step: one iteration's (shard of) labeling from pipeline
artifacts."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from mmrlaif import artifacts
from mmrlaif.config import Config
from mmrlaif.io import read_rows
from mmrlaif.io.hashes import tree_sha256
from mmrlaif.labeling.feedback import FeedbackStats
from mmrlaif.labeling.stage import SELF_LABELERS, label_stage
from mmrlaif.steps.merge import cached_shard, rows_key
from mmrlaif.toyworld import WorldPaths


def label_step(
    cfg: Config,
    policy_run: str | Path,
    initial_run: str | Path,
    world_dir: str | Path,
    samples_dir: str | Path,
    out_dir: str | Path,
) -> FeedbackStats:
    """One iteration's labeling from pipeline artifacts.

    The self-feedback labeler is the current policy (``labeling.labeler: policy``) or the
    pipeline's starting policy (``initial``). Writes ``feedback.parquet`` and ``stats.json``.
    """
    labeler_run = initial_run if cfg.labeling.labeler == "initial" else policy_run
    labeler = artifacts.model_dir(labeler_run) if cfg.labeling.labeler in SELF_LABELERS else ""
    samples = artifacts.table(samples_dir, "samples")
    prompts = WorldPaths(Path(world_dir)).prompts("align")

    def key_parts() -> tuple:  # the same samples, labeler and settings
        sample_rows = read_rows(samples)
        ids = {r["prompt_id"] for r in sample_rows}
        return (
            rows_key(sample_rows, ("prompt_id", "sample_idx", "response")),
            rows_key(
                [r for r in read_rows(prompts) if r["prompt_id"] in ids],
                ("prompt_id", "question", "image"),
            ),
            tree_sha256(labeler) if labeler else cfg.labeling.endpoint,
            asdict(cfg.labeling),
            cfg.model.dtype,
        )

    def compute() -> FeedbackStats:
        feedback = artifacts.table(out_dir, "feedback")
        stats = label_stage(labeler, cfg.model, cfg.labeling, samples, prompts, feedback)
        artifacts.write_stats(out_dir, stats)
        return stats

    return cached_shard(
        cfg.pipeline.shard_cache, "feedback", out_dir, FeedbackStats, key_parts, compute
    )
