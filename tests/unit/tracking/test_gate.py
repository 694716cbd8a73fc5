"""The promotion gate: the decision rule by hand, then against a real MLflow server."""

from __future__ import annotations

import pytest

from mmrlaif.config import GateConfig
from mmrlaif.tracking.gate import decide
from mmrlaif.tracking.lineage import metric_tags, metrics_from_tags

GATE = GateConfig(cover_tolerance=0.01, pope_tolerance=0.02)
CHAMPION = {"object_hal": 0.10, "cover": 0.90, "pope_adversarial_accuracy": 0.85}


def test_first_candidate_takes_the_alias() -> None:
    decision = decide({"object_hal": 0.2}, None, GATE)
    assert decision.promoted and "no champion yet" in decision.reason


def test_better_on_chair_within_tolerances_is_promoted() -> None:
    # object_hal 0.10 -> 0.08; cover 0.90 -> 0.895 (drop 0.005 <= 0.01); POPE 0.85 -> 0.84
    # (drop 0.01 <= 0.02)
    cand = {"object_hal": 0.08, "cover": 0.895, "pope_adversarial_accuracy": 0.84}
    decision = decide(cand, CHAMPION, GATE)
    assert decision.promoted, decision.reason
    assert "object_hal 0.1000 -> 0.0800" in decision.reason


def test_equal_chair_is_not_an_improvement() -> None:
    decision = decide(dict(CHAMPION), CHAMPION, GATE)
    assert not decision.promoted
    assert "does not beat" in decision.reason


def test_min_improvement_is_required() -> None:
    gate = GateConfig(min_improvement=0.03)
    # 0.10 - 0.08 = 0.02 < 0.03
    decision = decide(CHAMPION | {"object_hal": 0.08}, CHAMPION, gate)
    assert not decision.promoted and "by more than 0.03" in decision.reason
    assert decide(CHAMPION | {"object_hal": 0.06}, CHAMPION, gate).promoted


def test_each_regression_is_named() -> None:
    # cover drops 0.02 > 0.01, POPE drops 0.03 > 0.02: both named, though object_hal improved
    cand = {"object_hal": 0.01, "cover": 0.88, "pope_adversarial_accuracy": 0.82}
    decision = decide(cand, CHAMPION, GATE)
    assert not decision.promoted
    assert "cover fell 0.9000 -> 0.8800" in decision.reason
    assert "pope_adversarial_accuracy fell 0.8500 -> 0.8200" in decision.reason


def test_missing_figures() -> None:
    assert not decide({"cover": 1.0}, CHAMPION, GATE).promoted
    no_pope = {"object_hal": 0.05, "cover": 0.9}
    decision = decide(no_pope, CHAMPION, GATE)
    assert not decision.promoted and "no pope_adversarial_accuracy" in decision.reason
    # the champion lacks POPE: the check does not apply
    assert decide(no_pope, {"object_hal": 0.1, "cover": 0.9}, GATE).promoted


def test_broken_models_are_never_promoted_even_without_a_champion() -> None:
    # NaN weights: empty answers, object_hal 0 (0/0), Cover 0, POPE at chance
    nan_model = {"object_hal": 0.0, "cover": 0.0, "pope_adversarial_accuracy": 0.5}
    decision = decide(nan_model, None, GATE)
    assert not decision.promoted
    assert "cover 0.0000 is under its floor 0.1" in decision.reason
    assert "pope_adversarial_accuracy 0.5000 is under its floor 0.55" in decision.reason
    # a missing projector: Cover 5.9%
    assert "cover 0.0590 is under" in decide(CHAMPION | {"cover": 0.059}, None, GATE).reason
    # figures that are not numbers never pass a tolerance check
    for bad in ("nan", "inf"):
        cand = CHAMPION | {"object_hal": 0.01, "cover": float(bad)}
        decision = decide(cand, CHAMPION, GATE)
        assert not decision.promoted and f"cover is not finite ({float(bad)})" in decision.reason
    nan_metric = decide(CHAMPION | {"object_hal": float("nan")}, None, GATE)
    assert not nan_metric.promoted and "object_hal is not finite" in nan_metric.reason
    # the floors are configured (and checked at load)
    assert decide(nan_model, None, GateConfig(cover_floor=0.0, pope_floor=0.0)).promoted
    with pytest.raises(Exception, match="cover_floor must be in"):
        GateConfig(cover_floor=2)


def test_metric_tags_round_trip_exactly() -> None:
    headline = {"object_hal": 0.1 + 0.2, "cover": 1 / 3}
    assert metrics_from_tags(metric_tags(headline) | {"other": "x"}) == headline


@pytest.mark.integration
def test_gate_against_mlflow_server(mlflow_server, tmp_path, capsys) -> None:
    """Register three versions on a real server (artifacts on the loopback S3) and gate them."""
    from mmrlaif.tracking import mlflow_client as mf
    from mmrlaif.tracking.gate import DECISION_TAG, REASON_TAG, promote_version
    from mmrlaif.tracking.registry import register_model

    client = mf.client(mlflow_server.uri)
    experiment = client.create_experiment("gate-test")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    name = "gate-test-policy"

    def register(headline: dict[str, float], finished: bool = True) -> str:
        run = client.create_run(experiment).info.run_id
        if finished:
            client.set_terminated(run, "FINISHED")
        (model / "weights.bin").write_bytes(repr(headline).encode())
        tags = metric_tags(headline) | {"pipeline_run_id": run}
        return register_model(mlflow_server.uri, run, model, name, tags)

    first = register(CHAMPION)
    assert promote_version(mlflow_server.uri, name, first, GATE).promoted
    assert client.get_model_version_by_alias(name, "champion").version == first

    worse = register({"object_hal": 0.12, "cover": 0.95, "pope_adversarial_accuracy": 0.9})
    decision = promote_version(mlflow_server.uri, name, worse, GATE)
    assert not decision.promoted and decision.champion_version == first
    tags = client.get_model_version(name, worse).tags
    assert tags[DECISION_TAG] == "rejected"
    assert "object_hal 0.1200 does not beat 0.1000" in tags[REASON_TAG]
    assert client.get_model_version_by_alias(name, "champion").version == first

    # a better version made by a run that never finished (killed): refused, with the reason
    unfinished = register(
        {"object_hal": 0.01, "cover": 0.95, "pope_adversarial_accuracy": 0.9}, finished=False
    )
    decision = promote_version(mlflow_server.uri, name, unfinished, GATE)
    assert not decision.promoted and "which did not finish (status RUNNING)" in decision.reason
    assert client.get_model_version_by_alias(name, "champion").version == first

    better = register({"object_hal": 0.05, "cover": 0.9, "pope_adversarial_accuracy": 0.85})
    assert promote_version(mlflow_server.uri, name, better, GATE).promoted
    assert client.get_model_version_by_alias(name, "champion").version == better
    assert client.get_model_version(name, better).tags[DECISION_TAG] == "promoted"
    # the registered files are on the server's artifact store (the loopback S3 bucket)
    assert client.get_model_version(name, better).source.endswith("/model")

    # by hand, through the CLI: a worse candidate exits 1 with the reason; no such version: 2
    from mmrlaif.cli import main

    again = register({"object_hal": 0.06, "cover": 0.9, "pope_adversarial_accuracy": 0.85})
    argv = ["promote", "--config", "configs/tiny_cpu.yaml", "--model", name]
    argv += ["--tracking-uri", mlflow_server.uri]
    assert main([*argv, "--version", again]) == 1
    assert (
        "rejected for champion: object_hal 0.0600 does not beat 0.0500" in capsys.readouterr().out
    )
    assert main([*argv, "--version", "999"]) == 2
    assert "has no version 999" in capsys.readouterr().err
    assert client.get_model_version_by_alias(name, "champion").version == better


def test_a_broken_final_policy_is_not_registered(tmp_path, monkeypatch) -> None:
    import json

    import mlflow

    from mmrlaif import artifacts
    from mmrlaif.config import Config, from_dict
    from mmrlaif.io import write_json
    from mmrlaif.steps.track import register_step, start_step

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking = {"uri": uri, "experiment": "g", "registered_model": "broken-policy"}
    cfg = from_dict(Config, {"run": {"output_dir": str(tmp_path)}, "tracking": tracking})
    run_id = start_step(cfg, run_name="broken")
    policy = tmp_path / "policy"
    (policy / "model").mkdir(parents=True)
    (policy / "model" / "config.json").write_text("{}")
    report = tmp_path / "report"
    # what a model with NaN weights scored: empty answers, nothing named
    objects = {"object_hal": 0.0, "response_hal": 0.0, "cover": 0.0}
    pope = {"accuracy": 0.5, "f1": 0.0, "yes_ratio": 0.0}
    write_json(
        {"objects": objects, "pope": {"adversarial": pope}, "hallucinated_partner_share": 0.0},
        report / artifacts.EVAL_REPORT,
    )
    result = register_step(cfg, run_id, json.dumps([]), policy, report)
    assert result["version"] is None and not result["promoted"]
    assert "not registered: cover 0.0000 is under its floor 0.1" in result["reason"]
    assert not mlflow.MlflowClient(uri).search_model_versions("name='broken-policy'")
