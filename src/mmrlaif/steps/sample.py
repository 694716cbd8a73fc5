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
from mmrlaif.steps.merge import ShardCache, content_key, reused_stats, rows_key, shard_rows
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
    cache = ShardCache(cfg.pipeline.shard_cache) if cfg.pipeline.shard_cache else None
    key = ""
    if cache is not None:
        prompts = rows_key(rows, ("prompt_id", "question", "image"))
        key = content_key("samples", prompts, tree_sha256(model), asdict(sampling), cfg.model.dtype)
        if cache.restore("samples", key, out_dir):
            return reused_stats(out_dir, key, SamplingStats)
    with contextlib.ExitStack() as stack:
        if sampling.serve_policy:  # a server on this very policy, for this task only
            url = stack.enter_context(
                policy_server(model, sampling.serve_command, sampling.serve_timeout_s)
            )
            sampling = replace(sampling, endpoint=url)
        backend = make_backend(model, cfg.model, sampling)
        samples, stats = backend.sample(rows, sampling)
    write_table(samples, artifacts.table(out_dir, "samples"))
    artifacts.write_stats(out_dir, stats)
    if cache is not None:
        cache.publish("samples", key, out_dir)
    return stats
