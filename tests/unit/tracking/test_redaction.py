"""A password inside the tracking URI is found nowhere in what a run writes or logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mmrlaif.tracking.uri import redact_uri

SECRET = "s3cret-Pa55"


def test_redact_uri() -> None:
    assert redact_uri("http://alice:pw@mlflow:5000/x") == "http://***@mlflow:5000/x"
    assert redact_uri("see https://token@host and s3://bucket/k") == (
        "see https://***@host and s3://bucket/k"
    )
    assert redact_uri("postgresql://u:p@db/mlflow?x=1") == "postgresql://***@db/mlflow?x=1"
    assert redact_uri("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
    assert redact_uri("an e-mail a@b.c stays") == "an e-mail a@b.c stays"


@pytest.mark.integration
def test_no_password_in_outputs(mlflow_server, tmp_path, monkeypatch, caplog, capsys) -> None:
    from mmrlaif.config import Config, from_dict
    from mmrlaif.steps.track import finish_step, start_step
    from mmrlaif.tracking import mlflow_client as mf

    uri = mlflow_server.uri.replace("http://", f"http://alice:{SECRET}@")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # the client switches MLflow's URL printing off for the process: undone after the test
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "false")
    monkeypatch.setenv("MLFLOW_PRINT_MODEL_URLS_ON_CREATION", "true")
    cfg = from_dict(
        Config,
        {
            "run": {"output_dir": str(tmp_path / "run")},
            "tracking": {"uri": uri, "experiment": "redaction"},
        },
    )
    with caplog.at_level(logging.DEBUG):
        run_id = start_step(cfg, run_name="redaction")
        history = [{"iteration": 0, "headline": {"object_hal": 0.1, "cover": 0.9}}]
        summary = finish_step(cfg, run_id, json.dumps(history))
    written = [json.dumps(summary), caplog.text, *capsys.readouterr()]
    written += [p.read_text(errors="replace") for p in (tmp_path / "run").rglob("*") if p.is_file()]
    client = mf.client(mlflow_server.uri)
    run = client.get_run(run_id)
    written += [json.dumps(run.data.params), json.dumps(run.data.tags)]
    for name in ("config.yaml", "summary.json"):
        local = client.download_artifacts(run_id, name, str(tmp_path))
        written.append(Path(local).read_text())
    assert summary["tracking_uri"].startswith("http://***@127.0.0.1")
    assert run.data.params["tracking.uri"].startswith("http://***@")
    for text in written:
        assert SECRET not in text
