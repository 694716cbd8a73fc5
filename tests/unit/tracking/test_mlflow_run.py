"""MLflow tracking against a real local SQLite store (no mocks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mmrlaif.tracking import (
    finish_pipeline_run,
    flatten_params,
    log_iteration,
    open_ui_command,
    plot_iterations,
    register_model,
    resolve_tracking_uri,
    start_pipeline_run,
)

mlflow = pytest.importorskip("mlflow")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One SQLite store per module: creating it runs MLflow's migrations (a few seconds)."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.MlflowClient(uri).search_experiments()  # create the schema once
    return uri, root


@pytest.fixture(autouse=True)
def _no_env_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


@pytest.fixture
def client(store: tuple[str, Path]) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(store[0])


def _artifacts(client: mlflow.MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    return {f.path for f in client.list_artifacts(run_id, path)}


def test_resolve_tracking_uri_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    local = resolve_tracking_uri(None, run_dir)
    assert local == f"sqlite:///{run_dir.resolve()}/mlflow.db"
    assert local.startswith("sqlite:////")
    assert run_dir.is_dir()
    assert resolve_tracking_uri("", run_dir) == local
    assert resolve_tracking_uri("http://mlflow:5000", run_dir) == "http://mlflow:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    assert resolve_tracking_uri("http://mlflow:5000", run_dir) == "http://mlflow:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://tracking.example")
    assert resolve_tracking_uri("http://mlflow:5000", run_dir) == "https://tracking.example"


def test_open_ui_command() -> None:
    db = "sqlite:////abs/run/mlflow.db"
    assert open_ui_command(db) == f"mlflow ui --backend-store-uri {db}"
    assert open_ui_command("http://mlflow:5000") == "open http://mlflow:5000 in a browser"
    assert "--backend-store-uri file:///abs/mlruns" in open_ui_command("file:///abs/mlruns")


def test_flatten_params() -> None:
    flat = flatten_params({"a": {"b": {"c": 1}, "l": [1, 2], "t": (3,)}, "x": None, "e": {}})
    assert flat == {"a.b.c": "1", "a.l": "[1, 2]", "a.t": "(3,)", "x": "None", "e": "{}"}
    assert len(flatten_params({"long": "x" * 7000})["long"]) == 6000


def test_start_pipeline_run_logs_params_and_config(
    store: tuple[str, Path], client: mlflow.MlflowClient
) -> None:
    uri, root = store
    params = {
        "sft": {"trainer": {"learning_rate": 1e-4, "epochs": 2}},
        "seeds": [1, 2],
        "many": {f"k{i:03d}": i for i in range(150)},  # over one log_batch of 100
    }
    run_id = start_pipeline_run(uri, "params", "run-1", params, tags={"owner": "test"})
    run = client.get_run(run_id)
    assert run.info.status == "RUNNING"
    assert run.data.params["sft.trainer.learning_rate"] == "0.0001"
    assert run.data.params["seeds"] == "[1, 2]"
    assert run.data.params["many.k149"] == "149"
    assert len(run.data.params) == 153
    assert run.data.tags["owner"] == "test"
    # Artifacts of a local store land beside the database, not in ./mlruns.
    assert run.info.artifact_uri.startswith(str(root / "mlartifacts"))
    assert "config.yaml" in _artifacts(client, run_id)
    local = client.download_artifacts(run_id, "config.yaml", str(root))
    assert "learning_rate: 0.0001" in Path(local).read_text()


def test_two_iterations(
    store: tuple[str, Path], client: mlflow.MlflowClient, tmp_path: Path
) -> None:
    uri, _ = store
    parent = start_pipeline_run(uri, "iterations", "run-2", {"n": 1})
    base = log_iteration(uri, parent, 0, headline={"object_hal": 0.20, "cover": 0.50})

    model_dir = tmp_path / "policy"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    table = tmp_path / "pairs.parquet"
    table.write_bytes(b"not really parquet")
    history = [
        {"loss": 0.69, "rewards/margins": 0.0, "epoch": 0.5, "step": 1},
        {"loss": 0.50, "rewards/margins": 0.4, "rewards/accuracies": 1.0, "epoch": 1, "step": 2},
        {"train_runtime": 3.2, "note": "text", "step": 2},
    ]
    # Two components of iteration 1: training, then evaluation.
    trained = log_iteration(
        uri,
        parent,
        1,
        stats={"pairs": {"n_pairs": 12, "skip_tie": 3, "source": "rlaifv"}},
        step_history=history,
        artifacts={"pairs": table, "policy": model_dir},
        records={"pairs_sample": [{"chosen": "a cat", "claims": [["cat", True]]}]},
    )
    evaluated = log_iteration(
        uri,
        parent,
        1,
        headline={"object_hal": 0.15, "cover": 0.60},
        eval_report={"object_hal": 0.15, "per_image": [1, 2]},
    )
    assert evaluated == trained != base

    children = client.search_runs(
        [client.get_run(parent).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent}'",
    )
    assert sorted(r.info.run_name for r in children) == ["iteration-0", "iteration-1"]
    assert all(r.info.status == "FINISHED" for r in children)
    child = client.get_run(trained)
    assert child.data.tags["iteration"] == "1"
    assert child.data.metrics["pairs/n_pairs"] == 12
    assert child.data.metrics["pairs/skip_tie"] == 3
    assert "pairs/source" not in child.data.metrics
    assert "dpo/note" not in child.data.metrics and "dpo/step" not in child.data.metrics

    curve = client.get_metric_history(parent, "eval/object_hal")
    assert [(m.step, m.value) for m in sorted(curve, key=lambda m: m.step)] == [
        (0, 0.20),
        (1, 0.15),
    ]
    loss = client.get_metric_history(trained, "dpo/loss")
    assert sorted((m.step, m.value) for m in loss) == [(1, 0.69), (2, 0.50)]
    margins = client.get_metric_history(trained, "dpo/rewards/margins")
    assert sorted((m.step, m.value) for m in margins) == [(1, 0.0), (2, 0.4)]
    assert [m.value for m in client.get_metric_history(trained, "dpo/train_runtime")] == [3.2]
    assert sorted(m.value for m in client.get_metric_history(trained, "dpo/epoch")) == [0.5, 1.0]

    assert {"eval.json", "pairs", "policy", "pairs_sample.json"} <= _artifacts(client, trained)
    assert _artifacts(client, trained, "pairs") == {"pairs/pairs.parquet"}
    assert _artifacts(client, trained, "policy") == {"policy/config.json"}
    sample = client.download_artifacts(trained, "pairs_sample.json", str(tmp_path))
    assert json.loads(Path(sample).read_text())[0]["claims"] == [["cat", True]]


def test_skipped_iteration_and_missing_artifact(
    store: tuple[str, Path], client: mlflow.MlflowClient, tmp_path: Path
) -> None:
    uri, _ = store
    parent = start_pipeline_run(uri, "skipped", "run-3", {})
    child = log_iteration(uri, parent, 1, skipped_reason="no pairs after filtering")
    run = client.get_run(child)
    assert run.data.tags["skipped_reason"] == "no pairs after filtering"
    assert run.data.metrics["skipped"] == 1
    with pytest.raises(FileNotFoundError):
        log_iteration(uri, parent, 2, artifacts={"x": tmp_path / "absent.bin"})
    failed = client.search_runs(
        [run.info.experiment_id], filter_string="attributes.run_name = 'iteration-2'"
    )
    assert [r.info.status for r in failed] == ["FAILED"]


def test_plot_iterations_writes_png(tmp_path: Path) -> None:
    headlines = [
        {"object_hal": 0.2, "response_hal": 0.5, "cover": 0.5},
        {"object_hal": 0.1, "cover": 0.6},
    ]
    path = plot_iterations(headlines, tmp_path / "plots" / "h.png")
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    with Image.open(path) as image:
        assert image.width > 0 and image.height > 0
    assert [p.name for p in path.parent.iterdir()] == ["h.png"]  # no temporary left behind
    with pytest.raises(ValueError):
        plot_iterations([], tmp_path / "empty.png")


def test_finish_pipeline_run(store: tuple[str, Path], client: mlflow.MlflowClient) -> None:
    uri, root = store
    parent = start_pipeline_run(uri, "finish", "run-4", {})
    headlines = [{"object_hal": 0.20, "cover": 0.50}, {"object_hal": 0.16, "cover": 0.55}]
    finish_pipeline_run(uri, parent, headlines, summary={"note": "ok"})
    run = client.get_run(parent)
    assert run.info.status == "FINISHED"
    # (0.16 - 0.20) / 0.20 = -0.2; (0.55 - 0.50) * 100 = 5 points.
    assert run.data.metrics["change/object_hal_rel"] == pytest.approx(-0.2)
    assert run.data.metrics["change/cover_pts"] == pytest.approx(5.0)
    assert run.data.metrics["final/object_hal"] == pytest.approx(0.16)
    assert {"hallucination_vs_iteration.png", "summary.json"} <= _artifacts(client, parent)
    summary = json.loads(
        Path(client.download_artifacts(parent, "summary.json", str(root))).read_text()
    )
    assert summary["note"] == "ok" and summary["status"] == "FINISHED"

    failed = start_pipeline_run(uri, "finish", "run-5", {})
    finish_pipeline_run(uri, failed, [], status="failed")
    assert client.get_run(failed).info.status == "FAILED"
    with pytest.raises(ValueError):
        finish_pipeline_run(uri, failed, [], status="DONE")


def test_register_model_versions_and_alias(
    store: tuple[str, Path], client: mlflow.MlflowClient, tmp_path: Path
) -> None:
    uri, _ = store
    model_dir = tmp_path / "policy"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"model_type": "llava"}')
    parent = start_pipeline_run(uri, "registry", "run-6", {})
    first = log_iteration(uri, parent, 1)
    second = log_iteration(uri, parent, 2)
    assert register_model(uri, first, model_dir, "tiny-policy") == "1"
    version = register_model(uri, second, model_dir, "tiny-policy", tags={"it": "2"}, alias="best")
    assert version == "2"
    mv = client.get_model_version_by_alias("tiny-policy", "best")
    assert str(mv.version) == "2"
    assert mv.run_id == second
    assert mv.tags == {"it": "2"}
    assert mv.source.endswith(f"{second}/artifacts/model")
    assert _artifacts(client, second, "model") == {"model/config.json"}


def test_import_has_no_kfp_or_mlflow() -> None:
    code = (
        "import sys, mmrlaif.tracking; "
        "bad = [m for m in ('kfp', 'mlflow', 'matplotlib.pyplot') if m in sys.modules]; "
        "sys.exit(str(bad) if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unfinished_runs_are_closed(tmp_path: Path) -> None:
    """A pipeline run whose MLflow parent is still RUNNING (killed, failed) is closed."""
    from mmrlaif.config import Config, from_dict
    from mmrlaif.steps.track import start_step
    from mmrlaif.tracking.unfinished import close_unfinished_runs

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = from_dict(
        Config, {"run": {"output_dir": str(tmp_path)}, "tracking": {"uri": uri, "experiment": "k"}}
    )
    killed, finished = start_step(cfg, run_name="killed"), start_step(cfg, run_name="done")
    client = mlflow.MlflowClient(uri)
    client.set_terminated(finished, "FINISHED")
    for name, run_id in (("p-1", killed), ("p-2", finished)):
        task = tmp_path / "kfp" / name / "start-tracking"
        task.mkdir(parents=True)
        output = {"parameterValues": {"Output": run_id}}
        (task / "executor_output.json").write_text(json.dumps(output))
    assert close_unfinished_runs(cfg, "KILLED", "found unfinished by a later run") == [killed]
    run = client.get_run(killed)
    assert run.info.status == "KILLED"
    assert run.data.tags["terminated_reason"] == "found unfinished by a later run"
    assert client.get_run(finished).info.status == "FINISHED"
    assert close_unfinished_runs(cfg, "KILLED", "again") == []
