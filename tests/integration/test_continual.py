"""Continual retraining end to end: four scheduled-style runs of the RLAIF-V pipeline through
kfp.local, prompts in date partitions on the loopback S3 server, the model registry on the
loopback MLflow server (whose artifacts are on that S3 too)."""

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mmrlaif.config import Config, WorldConfig, from_dict
from mmrlaif.continual.partitions import WATERMARK_TAG, read_ledger
from mmrlaif.io import read_rows, write_table
from mmrlaif.toyworld import build_world
from tests.integration.test_pipeline import MINIMAL, _task_dirs
from tests.servers import free_port

pytestmark = pytest.mark.integration

MODEL = "continual-policy"


def _config(tmp_path: Path, name: str, prefix: str, uri: str, **sections) -> Config:
    data = json.loads(json.dumps(MINIMAL))
    data["run"] = {"output_dir": str(tmp_path / name)}
    data["data"] = {"prompts_prefix": prefix}
    data["tracking"] |= {"uri": uri, "experiment": "continual", "registered_model": MODEL}
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return from_dict(Config, data)


def _run(cfg: Config, monkeypatch) -> dict:
    from mmrlaif.pipelines.build import run_local

    monkeypatch.setenv("MLFLOW_TRACKING_URI", cfg.tracking.uri)
    return json.loads(run_local(cfg, cfg.tracking.uri).read_text())


def _consumed(cfg: Config) -> dict:
    return json.loads((_task_dirs(cfg)["prepare-world/world"] / "continual.json").read_text())


def test_runs_build_on_the_champion_and_consume_only_new_prompts(
    tmp_path, monkeypatch, mlflow_server, s3_env
):
    # the prompts: the align split of another toy world, arriving in weekly partitions
    source = build_world(WorldConfig(seed=11, n_train=8, n_align=16, n_eval=2), tmp_path / "src")
    rows = read_rows(source.prompts("align"))
    prefix = f"s3://{s3_env.bucket}/prompts"

    def arrive(date: str, part: list[dict]) -> None:
        write_table(part, f"{prefix}/dt={date}/part-0.parquet")

    arrive("2026-11-02", rows[0:4])
    arrive("2026-11-09", rows[4:8])
    uri = mlflow_server.uri
    client = MlflowClient(uri)

    # run 1: from the base (the toy SFT policy), every partition is new; promoted
    cfg1 = _config(tmp_path, "run1", prefix, uri)
    first = _run(cfg1, monkeypatch)
    assert _consumed(cfg1)["partitions"] == ["2026-11-02", "2026-11-09"]
    assert _consumed(cfg1)["new_prompts"] == 8
    assert first["registration"]["promoted"] is True
    v1 = first["registration"]["version"]
    model = client.get_registered_model(MODEL)
    assert model.tags[WATERMARK_TAG] == "2026-11-09"
    assert model.aliases["champion"] == v1
    assert client.get_model_version(MODEL, v1).tags["lineage.partitions"] == (
        "2026-11-02,2026-11-09"
    )

    # run 2: starts from run 1's champion and reads only the partition added since
    arrive("2026-11-16", rows[8:12])
    cfg2 = _config(
        tmp_path, "run2", prefix, uri, model={"name_or_path": f"models:/{MODEL}@champion"}
    )
    second = _run(cfg2, monkeypatch)
    source2 = json.loads(
        (_task_dirs(cfg2)["base-policy/policy"] / "policy_source.json").read_text()
    )
    assert (source2["kind"], source2["version"]) == ("registry", v1)
    consumed = _consumed(cfg2)
    assert consumed["partitions"] == ["2026-11-16"] and consumed["watermark_before"] == "2026-11-09"
    assert consumed["new_prompts"] == 4
    parent = client.get_run(second["run_id"]).data.tags
    assert parent["lineage.parent_version"] == v1
    v2 = second["registration"]["version"]
    assert v2 not in (None, v1)
    tags = client.get_model_version(MODEL, v2).tags
    assert tags["lineage.parent_version"] == v1
    assert tags["lineage.partitions"] == "2026-11-16"
    assert tags["lineage.watermark"] == "2026-11-16"
    for tag in ("config_hash", "model_sha", "gate.decision"):
        assert tags[tag], tag
    assert client.get_registered_model(MODEL).tags[WATERMARK_TAG] == "2026-11-16"
    ledger = read_ledger(f"{prefix}/_mmrlaif_ledger")
    assert len(ledger) == 12

    # run 3: nothing new; ends cleanly, registers nothing, the watermark stays
    versions_before = {v.version for v in client.search_model_versions(f"name='{MODEL}'")}
    cfg3 = _config(
        tmp_path, "run3", prefix, uri, model={"name_or_path": f"models:/{MODEL}@champion"}
    )
    third = _run(cfg3, monkeypatch)
    assert third["registration"]["version"] is None
    assert third["registration"]["reason"].startswith("no new prompts after 2026-11-16")
    # (an iteration without pairs ends cleanly: the policy is unchanged, the skip is logged)
    last = third["iterations"][1]
    assert last["pairs"] == 0 and "no pairs" in last["skipped_reason"]
    assert last["headline"] == third["iterations"][0]["headline"]
    child = client.search_runs(
        [client.get_run(third["run_id"]).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{third['run_id']}' and tags.iteration = '1'",
    )[0]
    assert "no pairs" in child.data.tags["skipped_reason"] and child.data.metrics["skipped"] == 1
    assert {v.version for v in client.search_model_versions(f"name='{MODEL}'")} == versions_before
    assert client.get_registered_model(MODEL).tags[WATERMARK_TAG] == "2026-11-16"

    # run 4: a new partition, but the run fails midway (the labeler endpoint is down):
    # the watermark and the ledger stay where run 2 left them
    arrive("2026-11-23", rows[12:16])
    down = {
        "labeler": "openai",
        "labeler_name_or_path": "labeler",
        "endpoint": f"http://127.0.0.1:{free_port()}/v1",
    }
    cfg4 = _config(tmp_path, "run4", prefix, uri, labeling=down)
    with pytest.raises(RuntimeError, match="label"):
        _run(cfg4, monkeypatch)
    assert _consumed(cfg4)["partitions"] == ["2026-11-23"]
    assert client.get_registered_model(MODEL).tags[WATERMARK_TAG] == "2026-11-16"
    assert read_ledger(f"{prefix}/_mmrlaif_ledger") == ledger
