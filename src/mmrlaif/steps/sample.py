"""The ``sample`` component's step: one iteration's (shard of) sampling from pipeline
artifacts."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, replace
from pathlib import Path

from mmrlaif import artifacts
from mmrlaif.artifacts import iteration_seed
from mmrlaif.config import Config
from mmrlaif.io import read_rows, write_table
from mmrlaif.io.hashes import tree_sha256
from mmrlaif.sampling.backends import make_backend
from mmrlaif.sampling.policy_server import policy_server
from mmrlaif.sampling.sampler import SamplingStats
from mmrlaif.steps.merge import cached_shard, rows_key, shard_rows
from mmrlaif.toyworld import WorldPaths


def sample_step(
    cfg: Config,
    iteration: int,
    policy_run: str | Path,
    world_dir: str | Path,
    out_dir: str | Path,
    shard: int = 0,
) -> SamplingStats:
    """One iteration's sampling from pipeline artifacts: the align prompts, fresh seeds.

    With ``pipeline.shards`` > 1 only shard ``shard`` of the prompts is sampled; with
    ``pipeline.shard_cache`` a finished shard of the same inputs is reused instead of
    recomputed. Writes ``samples.parquet`` and ``stats.json`` under ``out_dir``.
    """
    sampling = replace(cfg.sampling, seed=iteration_seed(cfg.sampling.seed, iteration))
    model = artifacts.model_dir(policy_run)
    rows = shard_rows(
        read_rows(WorldPaths(Path(world_dir)).prompts("align")), shard, cfg.pipeline.shards
    )

    def key_parts() -> tuple:
        prompts = rows_key(rows, ("prompt_id", "question", "image"))
        return prompts, tree_sha256(model), asdict(sampling), cfg.model.dtype

    def compute() -> SamplingStats:
        settings = sampling
        with contextlib.ExitStack() as stack:
            if settings.serve_policy:  # a server on this very policy, for this task only
                url = stack.enter_context(
                    policy_server(model, settings.serve_command, settings.serve_timeout_s)
                )
                settings = replace(settings, endpoint=url)
            backend = make_backend(model, cfg.model, settings)
            samples, stats = backend.sample(rows, settings)
        write_table(samples, artifacts.table(out_dir, "samples"))
        artifacts.write_stats(out_dir, stats)
        return stats

    return cached_shard(
        cfg.pipeline.shard_cache, "samples", out_dir, SamplingStats, key_parts, compute
    )
