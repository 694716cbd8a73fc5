"""Prompt selection for continual runs: partitions after the watermark, used prompts skipped,
replay, and the watermark's advance — against a real MLflow registry (SQLite) and, for S3
prefixes, the loopback moto server."""

import json
from pathlib import Path

import pytest
from PIL import Image

from mmrlaif.config import Config, ConfigError, from_dict
from mmrlaif.continual.partitions import (
    WATERMARK_TAG,
    advance,
    list_partitions,
    read_ledger,
    read_watermark,
    select_prompts,
)
from mmrlaif.io import image_to_cell, read_rows, write_table
from mmrlaif.tracking import mlflow_client as mf


def _cell(colour: tuple[int, int, int]) -> dict:
    return image_to_cell(Image.new("RGB", (8, 8), colour))


def _partition(prefix: str, date: str, colours: list[int], file: str = "part-0") -> None:
    rows = [{"image": _cell((c, 0, 0)), "question": "Describe the image."} for c in colours]
    write_table(rows, f"{prefix}/dt={date}/{file}.parquet")


def _cfg(tmp_path: Path, prefix: str, **data) -> Config:
    return from_dict(
        Config,
        {
            "run": {"output_dir": str(tmp_path / "run")},
            "data": {"prompts_prefix": prefix, **data},
            "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db", "registered_model": "policy"},
        },
    )


def _select(cfg: Config, tmp_path: Path, name: str):
    report = select_prompts(cfg, tmp_path / name / "align.parquet", tmp_path / name / "c.json")
    return report, read_rows(tmp_path / name / "align.parquet")


def test_partitions_are_listed_by_date_and_bad_names_are_errors(tmp_path):
    prefix = str(tmp_path / "prompts")
    _partition(prefix, "2026-11-08", [1])
    _partition(prefix, "2026-11-01", [2, 3])
    _partition(prefix, "2026-11-01", [4], "part-1")
    write_table([{"prompt_id": "x"}], f"{prefix}/_mmrlaif_ledger/run.parquet")  # not a partition
    parts = list_partitions(prefix)
    assert [p.date for p in parts] == ["2026-11-01", "2026-11-08"]
    assert [len(p.files) for p in parts] == [2, 1]
    _partition(prefix, "2026-13-01", [5])
    with pytest.raises(ConfigError, match=r"dt=2026-13-01.*partition dt='2026-13-01' is not a"):
        list_partitions(prefix)
    with pytest.raises(ConfigError, match="no such folder"):
        list_partitions(str(tmp_path / "nowhere"))


def test_runs_consume_only_new_partitions_and_unused_prompts(tmp_path):
    prefix = str(tmp_path / "prompts")
    _partition(prefix, "2026-11-01", [1, 2])
    _partition(prefix, "2026-11-08", [3, 3, 4])  # one exact duplicate inside the partition
    cfg = _cfg(tmp_path, prefix)
    assert read_watermark(cfg) is None  # the registered model does not exist yet

    first, rows = _select(cfg, tmp_path, "r1")
    assert first.watermark_before is None and first.watermark_after == "2026-11-08"
    assert first.partitions == ["2026-11-01", "2026-11-08"]
    assert first.new_prompts == len(rows) == 4
    assert first.skipped == {"duplicate of an earlier row": 1}
    mf.client(cfg.tracking.uri).create_registered_model("policy")
    assert advance(cfg, tmp_path / "r1" / "c.json", "run-1").watermark_after == "2026-11-08"
    assert read_watermark(cfg) == "2026-11-08"
    assert read_ledger(cfg.data.ledger) == set(first.new_ids)

    # a new partition repeats one prompt of an earlier run: skipped as used
    _partition(prefix, "2026-11-15", [4, 5])
    second, rows = _select(cfg, tmp_path, "r2")
    assert second.partitions == ["2026-11-15"] and second.watermark_before == "2026-11-08"
    assert second.new_prompts == len(rows) == 1
    assert second.skipped == {"used by an earlier run": 1}
    assert rows[0]["prompt_id"] not in first.new_ids

    # nothing advanced yet (say run 2 failed): a rerun selects the same again
    again, _ = _select(cfg, tmp_path, "r2b")
    assert again.new_ids == second.new_ids
    advance(cfg, tmp_path / "r2" / "c.json", "run-2")

    # nothing new: an empty table, a clear message, and the watermark stays
    third, rows = _select(cfg, tmp_path, "r3")
    assert rows == [] and third.new_prompts == 0 and third.partitions == []
    assert third.message.startswith("no new prompts after 2026-11-15 under")
    assert advance(cfg, tmp_path / "r3" / "c.json", "run-3") is None
    assert read_watermark(cfg) == "2026-11-15"
    assert json.loads((tmp_path / "r3" / "c.json").read_text())["watermark_after"] == "2026-11-15"


def test_replay_mixes_in_a_seeded_share_of_older_prompts(tmp_path):
    prefix = str(tmp_path / "prompts")
    _partition(prefix, "2026-11-01", list(range(10)))
    cfg = _cfg(tmp_path, prefix, replay_fraction=0.5, seed=3)
    first, _ = _select(cfg, tmp_path, "r1")
    mf.client(cfg.tracking.uri).create_registered_model("policy")
    advance(cfg, tmp_path / "r1" / "c.json", "run-1")
    _partition(prefix, "2026-11-08", [20, 21, 22, 23])
    picks = []
    for name in ("a", "b"):
        report, rows = _select(cfg, tmp_path, name)
        # 4 new prompts, round(0.5 * 4) = 2 replayed from the older partition
        assert (report.new_prompts, report.replayed, len(rows)) == (4, 2, 6)
        replayed = [r["prompt_id"] for r in rows[4:]]
        assert set(replayed) <= set(first.new_ids)
        picks.append(replayed)
    assert picks[0] == picks[1]  # the same seed draws the same prompts
    assert report.new_ids == [r["prompt_id"] for r in rows[:4]]  # replay is not re-ledgered


def test_an_s3_prefix_and_a_prefix_change(tmp_path, s3_env):
    prefix = f"s3://{s3_env.bucket}/prompts"
    _partition(prefix, "2026-11-01", [1, 2])
    cfg = _cfg(tmp_path, prefix)
    report, rows = _select(cfg, tmp_path, "r1")
    assert report.partitions == ["2026-11-01"] and len(rows) == 2
    mf.client(cfg.tracking.uri).create_registered_model("policy")
    advance(cfg, tmp_path / "r1" / "c.json", "run-1")
    assert read_ledger(f"{prefix}/_mmrlaif_ledger") == set(report.new_ids)
    tags = mf.client(cfg.tracking.uri).get_registered_model("policy").tags
    assert tags[WATERMARK_TAG] == "2026-11-01"
    # the watermark belongs to that prefix: another prefix starts from its beginning
    other = _cfg(tmp_path, f"s3://{s3_env.bucket}/other")
    assert read_watermark(other) is None


def test_config_rules(tmp_path):
    with pytest.raises(ConfigError, match="align_prompts or data.prompts_prefix, not both"):
        _cfg(tmp_path, "p", align_prompts="a.parquet")
    with pytest.raises(ConfigError, match=r"replay_fraction must be in \[0, 1\]"):
        _cfg(tmp_path, "p", replay_fraction=1.5)
    cfg = from_dict(
        Config, {"data": {"prompts_prefix": "x"}, "tracking": {"registered_model": None}}
    )
    with pytest.raises(ConfigError, match="needs tracking.registered_model"):
        read_watermark(cfg)
