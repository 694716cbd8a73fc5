"""Shards: balanced slices, results independent of the number of shards, and a cache that
lets a rerun skip finished shards (local folder and loopback S3)."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mmrlaif.config import Config, from_dict
from mmrlaif.io import read_rows, s3
from mmrlaif.models.load import save_model
from mmrlaif.steps.label import label_step
from mmrlaif.steps.merge import ShardCache, content_key, merge_step, shard_bounds
from mmrlaif.steps.pairs import pairs_step
from mmrlaif.steps.sample import sample_step


def test_shard_bounds_are_balanced_and_cover_every_row():
    # 10 rows in 4 shards: 10*k//4 for k = 0..4 -> 0, 2, 5, 7, 10 (sizes 2, 3, 2, 3)
    assert [shard_bounds(10, k, 4) for k in range(4)] == [(0, 2), (2, 5), (5, 7), (7, 10)]
    # more shards than rows: some shards are empty, none overlaps
    assert [shard_bounds(2, k, 4) for k in range(4)] == [(0, 0), (0, 1), (1, 1), (1, 2)]
    with pytest.raises(ValueError, match=r"shard 4 is not in \[0, 4\)"):
        shard_bounds(10, 4, 4)
    assert content_key("a", {"x": 1, "y": 2}) == content_key("a", {"y": 2, "x": 1})
    assert content_key("a", 1) != content_key("a", "1 ")


def _cfg(tmp_path: Path, shards: int, cache: str | None = None) -> Config:
    return from_dict(
        Config,
        {
            "run": {"output_dir": str(tmp_path)},
            "sampling": {"n": 4, "max_new_tokens": 24, "prompts_per_batch": 4},
            # the random policy names objects now and then: reject (nearly) every claim so that
            # answers with 1 and 2 claims differ in score and pairs form (answers naming
            # nothing never enter pairing)
            "labeling": {"reject_threshold": 0.05},
            "pipeline": {"shards": shards, "shard_cache": cache},
        },
    )


def _iteration(cfg: Config, policy: Path, world: Path, out: Path, shards=None) -> list[dict]:
    """Sample + label every shard (or ``shards``), merge, build pairs; returns the pairs rows."""
    parts = []
    for k in shards if shards is not None else range(cfg.pipeline.shards):
        sample_step(cfg, 1, policy, world, out / f"samples-{k}", k)
        label_step(cfg, policy, policy, world, out / f"samples-{k}", out / f"feedback-{k}")
        parts.append(k)
    merge_step(
        [out / f"samples-{k}" for k in parts],
        [out / f"feedback-{k}" for k in parts],
        out / "samples",
        out / "feedback",
    )
    pairs_step(cfg, 1, out / "feedback", world, out / "pairs")
    return read_rows(out / "pairs" / "pairs.parquet")


def _strip(rows: list[dict], drop=("policy",)) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


@pytest.fixture()
def policy(tmp_path, tiny_model) -> Path:
    save_model(*tiny_model, tmp_path / "policy" / "model")
    return tmp_path / "policy"


def test_one_and_four_shards_give_the_same_samples_verdicts_and_pairs(
    tmp_path, small_world, policy
):
    one = _iteration(_cfg(tmp_path, 1), policy, small_world.root, tmp_path / "k1")
    four = _iteration(_cfg(tmp_path, 4), policy, small_world.root, tmp_path / "k4")
    for table in ("samples", "feedback"):
        a = read_rows(tmp_path / "k1" / table / f"{table}.parquet")
        b = read_rows(tmp_path / "k4" / table / f"{table}.parquet")
        assert len(a) == 10 * 4 and _strip(a) == _strip(b), table
    assert one and _strip(one) == _strip(four)
    stats = json.loads((tmp_path / "k4" / "samples" / "stats.json").read_text())
    assert stats["shards"] == 4 and stats["samples_out"] == 40


def test_an_interrupted_run_resumes_from_its_finished_shards(tmp_path, small_world, policy):
    cache = str(tmp_path / "cache")
    cfg = _cfg(tmp_path, 4, cache)
    world = small_world.root
    # first attempt: shards 0 and 1 finish, shard 2 dies half-way through publishing
    _iteration(cfg, policy, world, tmp_path / "first", shards=[0, 1])
    published = sorted(p.name for p in (tmp_path / "cache" / "samples").iterdir())
    assert len(published) == 2
    partial = tmp_path / "cache" / "samples" / ".half-written.tmp"
    partial.mkdir()
    (partial / "samples.parquet").write_bytes(b"truncated")
    # rerun of the whole iteration: 0 and 1 are reused, 2 and 3 computed
    resumed = _iteration(cfg, policy, world, tmp_path / "again")
    reused = {
        k: "reused_shard"
        in json.loads((tmp_path / "again" / f"samples-{k}" / "stats.json").read_text())
        for k in range(4)
    }
    assert reused == {0: True, 1: True, 2: False, 3: False}
    labels = [
        "reused_shard"
        in json.loads((tmp_path / "again" / f"feedback-{k}" / "stats.json").read_text())
        for k in range(4)
    ]
    assert labels == [True, True, False, False]
    # the same as an uninterrupted run without any cache
    plain = _iteration(_cfg(tmp_path, 4), policy, world, tmp_path / "plain")
    assert _strip(resumed) == _strip(plain)
    # another policy (or other settings) is another key: nothing is reused
    changed = replace(cfg, sampling=replace(cfg.sampling, temperature=0.9))
    sample_step(changed, 1, policy, world, tmp_path / "other", 0)
    assert "reused_shard" not in json.loads((tmp_path / "other" / "stats.json").read_text())


def test_the_cache_on_s3_publishes_whole_shards_only(tmp_path, s3_env):
    cache = ShardCache(f"s3://{s3_env.bucket}/shards")
    shard = tmp_path / "shard"
    shard.mkdir()
    (shard / "samples.parquet").write_bytes(b"rows")
    (shard / "stats.json").write_text("{}")
    assert not cache.restore("samples", "k1", tmp_path / "out0")
    cache.publish("samples", "k1", shard)
    assert cache.restore("samples", "k1", tmp_path / "out1")
    assert (tmp_path / "out1" / "samples.parquet").read_bytes() == b"rows"
    # a shard whose upload stopped before its manifest is not complete: redone
    s3.upload_file(
        shard / "samples.parquet", f"s3://{s3_env.bucket}/shards/samples/k2/samples.parquet"
    )
    assert not cache.restore("samples", "k2", tmp_path / "out2")
