"""The pipelines end to end through kfp.local at minimal size, tracked in a real MLflow store."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mmrlaif.config import Config, from_dict
from mmrlaif.io import read_rows
from mmrlaif.steps.label import label_step
from mmrlaif.steps.pairs import pairs_step
from mmrlaif.steps.sample import sample_step

pytestmark = pytest.mark.integration

MINIMAL = {
    "world": {"n_train": 40, "n_align": 6, "n_eval": 6, "n_val": 4},
    "model": {
        "tiny": {
            "vision_hidden": 32,
            "vision_layers": 1,
            "vision_heads": 2,
            "patch_size": 16,
            "text_hidden": 32,
            "text_layers": 1,
            "text_heads": 2,
            "text_intermediate": 64,
        }
    },
    "sft": {"trainer": {"num_train_epochs": 1, "per_device_train_batch_size": 16}},
    "sampling": {"n": 4, "max_new_tokens": 16},
    "dpo": {"trainer": {"num_train_epochs": 1, "per_device_train_batch_size": 4}},
    "eval": {"max_new_tokens": 16},
    "povid": {"max_new_tokens": 16},
    "pipeline": {"iterations": 1},
    # the minimal models are undertrained on purpose (these tests check the plumbing): no floors
    "tracking": {
        "experiment": "test",
        "registered_model": "test-policy",
        "gate": {"cover_floor": 0.0, "pope_floor": 0.0},
    },
}


def _config(tmp_path: Path, **sections) -> Config:
    data = json.loads(json.dumps(MINIMAL))
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    data["run"] = {"output_dir": str(tmp_path / "run")}
    return from_dict(Config, data)


def _run(cfg: Config, tmp_path: Path, monkeypatch, uri: str | None = None) -> tuple[dict, str]:
    from mmrlaif.pipelines.build import run_local

    uri = uri or f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    summary = json.loads(run_local(cfg, uri).read_text())
    return summary, uri


def _task_dirs(cfg: Config) -> dict[str, Path]:
    """Output folders by task name, e.g. ``train-dpo/trained``."""
    (run_root,) = (Path(cfg.run.output_dir) / "kfp").iterdir()
    return {
        f"{task.name}/{out.name}": out
        for task in run_root.iterdir()
        if task.is_dir()
        for out in task.iterdir()
    }


def _no_path(row: dict) -> dict:
    """A pairs row without the policy folder it was sampled from (a path of this run)."""
    return {k: v for k, v in row.items() if k != "policy"}


def _child(client, parent_id: str, iteration: int):
    runs = client.search_runs(
        [client.get_run(parent_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and tags.iteration = '{iteration}'",
    )
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def test_rlaifv_pipeline_writes_every_artifact_and_metric(tmp_path, monkeypatch, mlflow_server):
    """Tracked on a real MLflow server whose artifacts live on the loopback S3 server."""
    from mlflow import MlflowClient

    # sampled and labeled in 2 parallel shards (dsl.ParallelFor), merged before the pairs
    # the 1-epoch policy names few objects: rejecting (nearly) every claim lets answers with
    # different numbers of claims form pairs (answers naming nothing never enter pairing)
    cfg = _config(
        tmp_path,
        pipeline={"shards": 2},
        labeling={"reject_threshold": 0.05},
        sampling={"n": 8, "max_new_tokens": 24},
    )
    summary, uri = _run(cfg, tmp_path, monkeypatch, mlflow_server.uri)
    assert [e["iteration"] for e in summary["iterations"]] == [0, 1]
    assert summary["iterations"][1]["pairs"] > 0
    dirs = _task_dirs(cfg)
    expected = {
        "prepare-world/world": ["sft.parquet", "prompts_align.parquet", "prompts_val.parquet"],
        "base-policy/policy": ["model/config.json"],
        "merge-shards/merged_samples": ["samples.parquet", "stats.json"],
        "merge-shards/merged_feedback": ["feedback.parquet", "stats.json"],
        "build-pairs/pairs": ["pairs.parquet", "stats.json"],
        "train-dpo/trained": ["model/model.safetensors", "dpo.json"],
        "evaluate/report": ["eval.json", "val.json"],
        "select-policy/policy": ["model/config.json", "selection.json"],
        "finish-tracking/summary": [],
    }
    for key, files in expected.items():
        assert key in dirs, sorted(dirs)
        for name in files:
            assert (dirs[key] / name).is_file(), f"{key}/{name}"
    assert not (dirs["train-dpo/trained"] / "checkpoints").exists()
    loops = sorted(d.name for d in dirs["build-pairs/pairs"].parents[1].glob("for-loop-*"))
    assert len(loops) == 2, loops  # one folder per shard, each with its sample and label
    for loop in loops:
        shard = dirs["build-pairs/pairs"].parents[1] / loop
        assert (shard / "sample" / "samples" / "samples.parquet").is_file()
        assert (shard / "label" / "feedback" / "feedback.parquet").is_file()
    # the shards change nothing: unsharded sampling, labeling and pairs on the same world and
    # base policy give the very pairs the sharded pipeline trained on
    one = replace(cfg, pipeline=replace(cfg.pipeline, shards=1))
    world, base, out = dirs["prepare-world/world"], dirs["base-policy/policy"], tmp_path / "k1"
    sample_step(one, 1, base, world, out / "samples")
    label_step(one, base, base, world, out / "samples", out / "feedback")
    pairs_step(one, 1, out / "feedback", world, out / "pairs")
    unsharded = read_rows(out / "pairs" / "pairs.parquet")
    sharded = read_rows(dirs["build-pairs/pairs"] / "pairs.parquet")
    assert len(sharded) == summary["iterations"][1]["pairs"]
    assert [_no_path(r) for r in sharded] == [_no_path(r) for r in unsharded]
    merged = json.loads((dirs["merge-shards/merged_samples"] / "stats.json").read_text())
    assert merged["shards"] == 2

    client = MlflowClient(uri)
    parent = client.get_run(summary["run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.params["dpo.trainer.num_train_epochs"] == "1"
    history = client.get_metric_history(parent.info.run_id, "eval/object_hal")
    assert sorted(m.step for m in history) == [0, 1]
    parent_files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"hallucination_vs_iteration.png", "summary.json"} <= parent_files
    child = _child(client, parent.info.run_id, 1)
    metrics = child.data.metrics
    for key in (
        "eval/object_hal",
        "eval/cover",
        "eval/pope_adversarial_accuracy",
        "sampling/samples_out",
        "labeling/claims",
        "pairs/pairs_out",
        "dpo/loss",
        "dpo/rewards/margins",
        "dpo/rewards/accuracies",
        "selection/keep_new",
        "candidate/object_hal",
    ):
        assert key in metrics, sorted(metrics)
    assert metrics["pairs/pairs_out"] == summary["iterations"][1]["pairs"]
    child_files = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert {"pairs_sample.json", "eval.json", "reports"} <= child_files
    sample_path = client.download_artifacts(child.info.run_id, "pairs_sample.json", str(tmp_path))
    pairs = json.loads(Path(sample_path).read_text())
    assert pairs and "claims" in pairs[0]["rejected_feedback"]
    # iteration 1's model is a registered version with its lineage and figures
    first = client.get_model_version("test-policy", "1")
    assert first.tags["iteration"] == "1" and first.run_id == child.info.run_id
    for tag in ("config_hash", "model_sha", "data.pairs_sha", "data.eval_sha", "metric.object_hal"):
        assert first.tags[tag], tag
    assert float(first.tags["metric.object_hal"]) == child.data.metrics["candidate/object_hal"]
    # the final policy went through the gate: the first version of a model becomes champion
    registration = summary["registration"]
    assert registration["promoted"] is True and "no champion yet" in registration["reason"]
    champion = client.get_model_version_by_alias("test-policy", "champion")
    assert champion.version == registration["version"]
    assert champion.tags["gate.decision"] == "promoted"
    kept_new = summary["iterations"][1]["kept_new"]
    # the final policy is iteration 1's version when it was kept, else the base, registered anew
    assert (registration["version"] == "1") == bool(kept_new)


def test_povid_pipeline_runs(tmp_path, monkeypatch):
    cfg = _config(tmp_path, pipeline={"method": "povid", "iterations": 1})
    summary, _ = _run(cfg, tmp_path, monkeypatch)
    assert summary["method"] == "povid"
    stats = json.loads((_task_dirs(cfg)["povid-pairs/pairs"] / "stats.json").read_text())
    assert stats["pairs_out"] == summary["iterations"][1]["pairs"] > 0
    assert set(stats["by_source"]) <= {"povid_text", "povid_noise"}
