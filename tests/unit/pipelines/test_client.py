"""``mmrlaif submit`` / ``schedule``: the real ``kfp.Client`` against a recording loopback API.

The boundary: everything up to the HTTP requests kfp 2.17's client sends is real (compiled
spec, client, generated REST client, urllib3); the server is ``kfp_api.FakeKFP``, which
records and answers but validates nothing a real KFP server would, with no Argo behind it.
"""

# (no `from __future__ import annotations`: KFP reads the component annotations as types)

import json
import logging
import time
from pathlib import Path

import pytest
import yaml
from kfp import compiler, dsl
from kfp.client import Client

import mmrlaif
import mmrlaif.pipelines.connection as kfp_connection
from mmrlaif.cli import main
from mmrlaif.config import config_to_json, load_config
from mmrlaif.pipelines import compile_pipeline
from mmrlaif.pipelines.client import RUN_DATE_MACRO, KFPServerError, schedule_run, submit_run
from tests.servers import free_port
from tests.unit.pipelines.kfp_api import API, FakeKFP

ROOT = Path(__file__).resolve().parents[3]
PRESET = ROOT / "configs" / "tiny_cpu.yaml"
#: In the environment while compiling and submitting; must reach no request.
SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIA-topsecret-id",
    "AWS_SECRET_ACCESS_KEY": "topsecret-value",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-topsecret-password",
}
TOKEN = "kfp-bearer-topsecret-token"
RUNS = f"{API}/runs"
RECURRING = f"{API}/recurringruns"


@dsl.component(base_image="python:3.11-slim")
def _echo(text: str):
    print(text)


@pytest.fixture(scope="module")
def cfg():
    return load_config(PRESET)


@pytest.fixture(scope="module")
def package(cfg, tmp_path_factory) -> Path:
    """The configured pipeline, compiled once, with credentials in the environment."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in SECRETS.items():
            mp.setenv(key, value)
        return compile_pipeline(cfg, tmp_path_factory.mktemp("kfp") / "rlaifv.yaml")


@pytest.fixture(scope="module")
def toy_package(tmp_path_factory) -> Path:
    """A one-task pipeline with parameters the real one will grow (``run_date``, an int)."""

    @dsl.pipeline(name="toy")
    def toy(config: str = "{}", run_date: str = "", shards: int = 1):
        _echo(text=config)

    path = tmp_path_factory.mktemp("toy") / "toy.yaml"
    compiler.Compiler().compile(toy, str(path))
    return path


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No KFP settings from this machine; kfp's context file (which it may write) in tmp."""
    monkeypatch.setattr(Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    for var in (
        "KFP_HOST",
        "KFP_TOKEN",
        "KF_PIPELINES_SA_TOKEN_PATH",
        "KF_PIPELINES_ENDPOINT",
        "KF_PIPELINES_UI_ENDPOINT",
        "KF_PIPELINES_DEFAULT_EXPERIMENT_NAME",
        "KF_PIPELINES_OVERRIDE_EXPERIMENT_NAME",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(kfp_connection, "TIMEOUT_S", (2.0, 10.0))


@pytest.fixture()
def kfp_api():
    with FakeKFP() as fake:
        yield fake


@pytest.fixture()
def secrets_in_env(monkeypatch):
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KFP_TOKEN", TOKEN)


def _spec(body: dict) -> dict:
    """The pipeline spec of a run body (kfp nests it when there is a platform spec)."""
    spec = body["pipeline_spec"]
    return spec.get("pipeline_spec", spec)


def _assert_no_credentials(fake: FakeKFP, *texts: str) -> None:
    for req in fake.requests:
        sent = req.raw + json.dumps(req.query)
        for value in SECRETS.values():
            assert value not in sent, f"{value} sent in {req.method} {req.path}"
            assert value not in json.dumps(req.headers)
        assert TOKEN not in sent
    for text in texts:
        assert TOKEN not in text
        assert not any(value in text for value in SECRETS.values())


# ---- submit ----------------------------------------------------------------------------------


def test_submit_sends_spec_parameters_account_experiment_and_root(
    cfg, package, kfp_api, secrets_in_env, caplog
):
    caplog.set_level(logging.DEBUG)
    exp = kfp_api.add_experiment("mmrlaif-nightly")
    run = submit_run(
        cfg,
        host=kfp_api.url,
        experiment="mmrlaif-nightly",
        run_name="nightly-1",
        service_account="mmrlaif-runner",
        pipeline_root="s3://bucket/pipeline-root",
        package=package,
    )
    [create] = kfp_api.calls("POST", RUNS)
    body = create.body
    compiled = next(yaml.load_all(package.read_text(), Loader=yaml.CSafeLoader))
    assert _spec(body) == compiled  # the compiled spec, as compiled
    assert _spec(body)["pipelineInfo"]["name"] == "mmrlaif-rlaifv"
    assert body["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]
    assert body["runtime_config"]["parameters"] == {"config": config_to_json(cfg)}
    assert body["runtime_config"]["pipeline_root"] == "s3://bucket/pipeline-root"
    assert body["service_account"] == "mmrlaif-runner"
    assert body["experiment_id"] == exp["experiment_id"]
    assert body["display_name"] == "nightly-1"
    assert not kfp_api.calls("POST", f"{API}/experiments")  # found, not created
    assert run.run_id in kfp_api.runs and run.experiment_id == exp["experiment_id"]
    assert run.url == f"{kfp_api.url}/#/runs/details/{run.run_id}"
    # the bearer token travels in the header only, and is never logged
    assert {r.headers.get("authorization") for r in kfp_api.requests} == {f"Bearer {TOKEN}"}
    _assert_no_credentials(kfp_api, caplog.text)


def test_submit_defaults_come_from_the_config_and_the_experiment_is_created(cfg, package, kfp_api):
    run = submit_run(cfg, host=kfp_api.url, package=package)
    [create_exp] = kfp_api.calls("POST", f"{API}/experiments")
    assert create_exp.body["display_name"] == cfg.kfp.experiment
    body = kfp_api.runs[run.run_id]
    assert body["experiment_id"] == run.experiment_id
    assert body["service_account"] == cfg.kfp.service_account
    assert "pipeline_root" not in body["runtime_config"]  # null: the server's default
    assert body["display_name"].startswith("mmrlaif-rlaifv-")
    assert "authorization" not in kfp_api.requests[0].headers  # no token in the env


def test_params_are_typed_and_run_date_is_a_macro_only_on_schedules(cfg, toy_package, kfp_api):
    run = submit_run(cfg, host=kfp_api.url, package=toy_package, parameters={"shards": "3"})
    assert kfp_api.runs[run.run_id]["runtime_config"]["parameters"] == {
        "config": config_to_json(cfg),
        "shards": 3,
    }
    sched = schedule_run(cfg, host=kfp_api.url, package=toy_package)
    params = kfp_api.recurring_runs[sched.recurring_run_id]["runtime_config"]["parameters"]
    assert params["run_date"] == RUN_DATE_MACRO == "[[ScheduledTime.2006-01-02]]"
    sched = schedule_run(
        cfg, host=kfp_api.url, package=toy_package, parameters={"run_date": "2026-01-05"}
    )
    params = kfp_api.recurring_runs[sched.recurring_run_id]["runtime_config"]["parameters"]
    assert params["run_date"] == "2026-01-05"  # the user's value wins


def test_unknown_or_ill_typed_params_are_refused_before_any_request(cfg, toy_package, kfp_api):
    with pytest.raises(ValueError, match=r"unknown pipeline parameter\(s\) shard;"):
        submit_run(cfg, host=kfp_api.url, package=toy_package, parameters={"shard": "3"})
    with pytest.raises(ValueError, match="shards: expected NUMBER_INTEGER, got 'many'"):
        submit_run(cfg, host=kfp_api.url, package=toy_package, parameters={"shards": "many"})
    assert kfp_api.requests == []


def test_service_account_token_file_is_sent_as_bearer(cfg, package, kfp_api, monkeypatch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("projected-sa-token\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token_file))
    submit_run(cfg, host=kfp_api.url, package=package)
    assert {r.headers.get("authorization") for r in kfp_api.requests} == {
        "Bearer projected-sa-token"
    }
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(KFPServerError, match="cannot read the ServiceAccount token file"):
        submit_run(cfg, host=kfp_api.url, package=package)


# ---- schedule --------------------------------------------------------------------------------


def test_schedule_replaces_the_recurring_run_of_the_same_name(cfg, package, kfp_api):
    exp = kfp_api.add_experiment(cfg.kfp.experiment)
    old = kfp_api.add_recurring_run("weekly-retrain", exp["experiment_id"])
    other = kfp_api.add_recurring_run("something-else", exp["experiment_id"])
    result = schedule_run(
        cfg,
        host=kfp_api.url,
        name="weekly-retrain",
        cron="0 30 2 * * 1",
        max_concurrency=2,
        catchup=False,
        package=package,
    )
    assert result.replaced == (old["recurring_run_id"],)
    methods = [(r.method, r.path) for r in kfp_api.requests]
    delete = methods.index(("DELETE", f"{RECURRING}/{old['recurring_run_id']}"))
    assert delete < methods.index(("POST", RECURRING))  # delete, then create
    assert set(kfp_api.recurring_runs) == {other["recurring_run_id"], result.recurring_run_id}
    [listing] = kfp_api.calls("GET", RECURRING)
    assert listing.query["experiment_id"] == [exp["experiment_id"]]
    [create] = kfp_api.calls("POST", RECURRING)
    body = create.body
    assert body["trigger"] == {"cron_schedule": {"cron": "0 30 2 * * 1"}}
    assert int(body["max_concurrency"]) == 2
    assert body["no_catchup"] is True
    assert body["mode"] == "ENABLE"
    assert body["display_name"] == "weekly-retrain"
    assert body["experiment_id"] == exp["experiment_id"]
    assert body["service_account"] == cfg.kfp.service_account
    assert _spec(body)["pipelineInfo"]["name"] == "mmrlaif-rlaifv"
    params = body["runtime_config"]["parameters"]
    assert params["config"] == config_to_json(cfg)
    declared = _spec(body)["root"]["inputDefinitions"]["parameters"]
    assert ("run_date" in params) == ("run_date" in declared)


def test_schedule_defaults_come_from_the_config(cfg, package, kfp_api):
    result = schedule_run(cfg, host=kfp_api.url, catchup=True, package=package)
    assert result.replaced == ()
    body = kfp_api.recurring_runs[result.recurring_run_id]
    assert body["display_name"] == cfg.kfp.schedule.name
    assert body["trigger"]["cron_schedule"]["cron"] == cfg.kfp.schedule.cron
    assert int(body["max_concurrency"]) == cfg.kfp.schedule.max_concurrency
    assert body["no_catchup"] is False
    assert not kfp_api.calls("DELETE")


def test_schedule_uploads_a_pipeline_version_and_runs_it(cfg, package, kfp_api):
    first = schedule_run(cfg, host=kfp_api.url, package=package, upload_pipeline="mmrlaif-prod")
    # a new pipeline: uploaded once, its only version is the one scheduled
    [pipeline] = kfp_api.pipelines.values()
    assert pipeline["display_name"] == "mmrlaif-prod"
    [version] = kfp_api.versions.values()
    assert (first.pipeline_id, first.pipeline_version_id) == (
        pipeline["pipeline_id"],
        version["pipeline_version_id"],
    )
    assert "mmrlaif-rlaifv" in version["upload"]  # the compiled spec was the uploaded file
    body = kfp_api.recurring_runs[first.recurring_run_id]
    assert body["pipeline_version_reference"] == {
        "pipeline_id": first.pipeline_id,
        "pipeline_version_id": first.pipeline_version_id,
    }
    assert "pipeline_spec" not in body
    # an existing pipeline: a new version is added and the recurring run replaced
    second = schedule_run(cfg, host=kfp_api.url, package=package, upload_pipeline="mmrlaif-prod")
    assert len(kfp_api.pipelines) == 1 and len(kfp_api.versions) == 2
    assert second.pipeline_id == first.pipeline_id
    assert second.pipeline_version_id not in (None, first.pipeline_version_id)
    assert second.replaced == (first.recurring_run_id,)
    [upload] = kfp_api.calls("POST", f"{API}/pipelines/upload_version")
    assert upload.query["pipelineid"] == [first.pipeline_id]
    assert upload.query["name"][0].startswith(f"{mmrlaif.__version__}-")
    assert body_ref(kfp_api, second) == second.pipeline_version_id


def body_ref(kfp_api, scheduled):
    ref = kfp_api.recurring_runs[scheduled.recurring_run_id]["pipeline_version_reference"]
    return ref["pipeline_version_id"]


def test_refused_upload_names_the_pipeline_and_deletes_nothing(cfg, package, kfp_api):
    exp = kfp_api.add_experiment(cfg.kfp.experiment)
    kfp_api.add_recurring_run(cfg.kfp.schedule.name, exp["experiment_id"])
    kfp_api.refuse(403, "POST", f"{API}/pipelines/upload")
    with pytest.raises(KFPServerError, match="uploading the pipeline 'mmrlaif-prod'.*403"):
        schedule_run(cfg, host=kfp_api.url, package=package, upload_pipeline="mmrlaif-prod")
    assert len(kfp_api.recurring_runs) == 1 and not kfp_api.calls("DELETE")


def test_five_field_cron_is_refused_before_any_request(cfg, package, kfp_api):
    with pytest.raises(ValueError, match="must have 6 fields"):
        schedule_run(cfg, host=kfp_api.url, cron="0 3 * * 1", package=package)
    assert kfp_api.requests == []


# ---- errors ----------------------------------------------------------------------------------


def test_unreachable_host_fails_fast_naming_the_host(cfg, package):
    host = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    match = f"cannot reach Kubeflow Pipelines at {host}: .*Connection refused"
    with pytest.raises(KFPServerError, match=match):
        submit_run(cfg, host=host, package=package)
    assert time.monotonic() - start < 5


def test_a_server_that_never_answers_times_out(cfg, package, monkeypatch):
    monkeypatch.setattr(kfp_connection, "TIMEOUT_S", (0.3, 0.3))
    with FakeKFP(hang=True) as fake:
        start = time.monotonic()
        with pytest.raises(KFPServerError, match=f"cannot reach .* at {fake.url}: .*timed out"):
            submit_run(cfg, host=fake.url, package=package)
        assert time.monotonic() - start < 5  # 3 attempts x 0.3 s + 1 s backoff
        assert len(fake.requests) == 3


def test_refusing_server_gives_status_and_operation(cfg, package, kfp_api):
    kfp_api.refuse(403)
    start = time.monotonic()
    with pytest.raises(KFPServerError) as info:
        submit_run(cfg, host=kfp_api.url, package=package)
    assert str(info.value) == (
        f"Kubeflow Pipelines at {kfp_api.url} refused the health check: "
        "HTTP 403 Forbidden: refused by the test (403)"
    )
    assert time.monotonic() - start < 2  # one attempt, not kfp's 5 x 5 s
    assert len(kfp_api.requests) == 1


def test_server_error_on_create_names_the_operation(cfg, package, kfp_api):
    kfp_api.refuse(500, "POST", RUNS)
    with pytest.raises(KFPServerError, match=r"refused creating the run 'r1': HTTP 500 "):
        submit_run(cfg, host=kfp_api.url, run_name="r1", package=package)


def test_failed_create_after_delete_says_what_was_deleted(cfg, package, kfp_api):
    exp = kfp_api.add_experiment(cfg.kfp.experiment)
    old = kfp_api.add_recurring_run(cfg.kfp.schedule.name, exp["experiment_id"])
    kfp_api.refuse(409, "POST", RECURRING)
    with pytest.raises(KFPServerError, match=f"previous one\\(s\\): {old['recurring_run_id']}"):
        schedule_run(cfg, host=kfp_api.url, package=package)


# ---- the command line ------------------------------------------------------------------------


def test_cli_submit_compiles_into_a_temp_file_and_prints_the_run(
    cfg, package, kfp_api, secrets_in_env, capsys, monkeypatch
):
    # the compile step itself is stood in for by the module's package (same config): the
    # real one takes seconds; what is tested is that submit compiles when given no package
    import mmrlaif.pipelines.build as build

    compiled: list[Path] = []

    def compile_pipeline(config, path):
        assert config == cfg
        compiled.append(Path(path))
        Path(path).write_text(package.read_text())
        return Path(path)

    monkeypatch.setattr(build, "compile_pipeline", compile_pipeline)
    monkeypatch.setenv("KFP_HOST", kfp_api.url)  # no --host, no kfp.host: the environment's
    rc = main(["submit", "--config", str(PRESET), "--experiment", "cli", "--run-name", "cli-1"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    [run_id] = kfp_api.runs
    assert out.out.splitlines() == [
        f"run id: {run_id}",
        f"run url: {kfp_api.url}/#/runs/details/{run_id}",
    ]
    assert len(compiled) == 1 and not compiled[0].exists()  # a temporary file, removed
    body = kfp_api.runs[run_id]
    assert _spec(body)["pipelineInfo"]["name"] == "mmrlaif-rlaifv"
    assert body["display_name"] == "cli-1"
    _assert_no_credentials(kfp_api, out.out, out.err)


def test_cli_schedule_prints_what_it_replaced(cfg, package, kfp_api, capsys):
    exp = kfp_api.add_experiment(cfg.kfp.experiment)
    old = kfp_api.add_recurring_run("weekly", exp["experiment_id"])
    argv = ["schedule", "--config", str(PRESET), "--host", kfp_api.url, "--package", str(package)]
    rc = main([*argv, "--name", "weekly", "--cron", "0 0 4 * * 0", "--catchup"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    [new] = kfp_api.recurring_runs
    assert out.out.splitlines() == [
        f"recurring run id: {new}",
        f"replaced: {old['recurring_run_id']}",
    ]
    assert kfp_api.recurring_runs[new]["no_catchup"] is False


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    [
        ("submit", [], "cannot reach Kubeflow Pipelines at http://127.0.0.1:"),
        ("schedule", ["--refuse"], "refused the health check: HTTP 403 Forbidden"),
        ("schedule", ["--cron", "0 3 * * 1"], "must have 6 fields"),
        ("submit", ["--param", "nope=1"], "unknown pipeline parameter(s) nope"),
        ("submit", ["--param", "nope"], "--param expects KEY=VALUE"),
        ("submit", ["--no-host"], "no Kubeflow Pipelines host"),
    ],
)
def test_cli_errors_exit_2_with_the_message(package, kfp_api, capsys, command, extra, message):
    host = f"http://127.0.0.1:{free_port()}" if command == "submit" and not extra else kfp_api.url
    if "--refuse" in extra:
        kfp_api.refuse(403)
    argv = [command, "--config", str(PRESET), "--package", str(package)]
    if "--no-host" not in extra:
        argv += ["--host", host]
    argv += [a for a in extra if a not in ("--refuse", "--no-host")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmrlaif: error: ") and message in err
    assert "Traceback" not in err
