"""Multi-node DPO as a Kubeflow Trainer v2.3 TrainJob.

- The manifest is checked against ``kubeflow-trainer-api`` 2.3.0's typed models (it must
  round-trip through them unchanged: no unknown or mistyped field) and its pod-level pieces
  against the core Kubernetes schemas (``kubernetes-validate``).
- The launcher is exercised against the real ``kubernetes`` Python client talking to a small
  threaded HTTP server on 127.0.0.1 (:class:`FakeKubeAPI`). That is the request boundary only:
  no Trainer controller, JobSet or kubelet runs here; the server answers what they would
  (status conditions of Trainer v2.3, pods labelled as JobSet labels them, a pod log).
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate
import pytest
from kubeflow_trainer_api import models
from kubernetes import client as k8s

from mmrlaif.config import (
    Config,
    KubernetesConfig,
    ResourcesConfig,
    StorageConfig,
    TolerationConfig,
    TrainJobConfig,
    parse_config,
)
from mmrlaif.io import s3
from mmrlaif.steps import train as launch
from mmrlaif.steps import trainjob

URIS = {
    "config_uri": "s3://bkt/trainjobs/j/config.json",
    "policy": "s3://bkt/trainjobs/j/policy",
    "pairs": "s3://bkt/trainjobs/j/pairs",
    "out": "s3://bkt/trainjobs/j/trained",
}
ARGS = trainjob.launch_args(iteration=1, **URIS)
GPU_POOL = {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}


def _cfg(train: ResourcesConfig | None = None, **kube) -> Config:
    train = train or ResourcesConfig(
        cpu_request="48",
        cpu_limit="96",
        memory_request="600Gi",
        memory_limit="900Gi",
        accelerator_limit=8,
        node_selector=GPU_POOL,
        tolerations=(
            TolerationConfig(key="nvidia.com/gpu"),
            TolerationConfig(key="pool", operator="Equal", value="dpo", effect="NoExecute"),
        ),
    )
    kubernetes = KubernetesConfig(
        gpu_image="registry.example/mmrlaif-gpu:1.2.3",
        image_pull_secrets=("regcred",),
        train=train,
        trainjob=TrainJobConfig(num_nodes=4, gpus_per_node=8, namespace="ml"),
        **({"env": {"MLFLOW_TRACKING_URI": "http://mlflow.mlflow:5000"}} | kube),
    )
    return Config(kubernetes=kubernetes, storage=StorageConfig(endpoint_url="http://minio:9000"))


@pytest.fixture()
def manifest(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "topsecret")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSECRETID")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "hunter2")
    monkeypatch.setenv("MMRLAIF_S3_ENDPOINT_URL", "http://minio.minio:9000")
    return trainjob.build_trainjob(
        NAME, "ml", _cfg(), command_args=ARGS, iteration=1, labels={"mmrlaif/run": "r1"}
    )


def _env(manifest) -> dict[str, dict]:
    return {e["name"]: e for e in manifest["spec"]["trainer"]["env"]}


def _node_patch(manifest) -> dict:
    (patch,) = manifest["spec"]["runtimePatches"]
    assert patch["manager"] == trainjob.PATCH_MANAGER
    (rjob,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert rjob["name"] == "node"  # the torch-distributed runtime's ReplicatedJob
    return rjob["template"]["spec"]["template"]


# --------------------------------------------------------------------------------------------
# The manifest
# --------------------------------------------------------------------------------------------


def test_manifest_round_trips_through_trainer_v2_3_typed_models(manifest):
    typed = models.TrainerV1alpha1TrainJob.from_dict(manifest)
    assert typed.to_dict() == manifest  # from_dict drops unknown keys: nothing was dropped
    assert typed.spec.trainer.num_nodes == 4 and typed.spec.trainer.num_proc_per_node == 8
    assert typed.spec.runtime_ref.name == "torch-distributed"
    assert manifest["apiVersion"] == "trainer.kubeflow.org/v1alpha1" == trainjob.API_VERSION
    assert manifest["kind"] == "TrainJob" and trainjob.TRAINER_VERSION == "v2.3.0"


def test_pod_level_pieces_validate_against_kubernetes_schemas(manifest):
    spec = manifest["spec"]["trainer"]
    patch = _node_patch(manifest)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{manifest['metadata']['name']}-node-0-0", **patch["metadata"]},
        "spec": {
            "containers": [
                {
                    "name": "node",
                    "image": spec["image"],
                    "command": spec["command"],
                    "args": spec["args"],
                    "env": spec["env"],
                    "resources": spec["resourcesPerNode"],
                }
            ],
            **patch["spec"],
        },
    }
    kubernetes_validate.validate(pod, "1.33", strict=True)
    meta = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": manifest["metadata"]}
    kubernetes_validate.validate(meta, "1.33", strict=True)


def test_gpus_resources_placement_and_labels(manifest):
    trainer = manifest["spec"]["trainer"]
    assert trainer["numNodes"] == 4 and trainer["numProcPerNode"] == 8
    assert trainer["image"] == "registry.example/mmrlaif-gpu:1.2.3"
    res = trainer["resourcesPerNode"]
    assert res["limits"] == {"nvidia.com/gpu": "8", "cpu": "96", "memory": "900Gi"}
    assert res["requests"] == {"cpu": "48", "memory": "600Gi"}
    pod = _node_patch(manifest)
    assert pod["spec"]["nodeSelector"] == GPU_POOL
    assert pod["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "pool", "operator": "Equal", "value": "dpo", "effect": "NoExecute"},
    ]
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    for labels in (manifest["metadata"]["labels"], pod["metadata"]["labels"]):
        assert labels["mmrlaif/iteration"] == "1" and labels["mmrlaif/run"] == "r1"
    assert manifest["spec"]["activeDeadlineSeconds"] == TrainJobConfig().timeout_s


def test_command_runs_the_launcher_under_torchrun(manifest):
    trainer = manifest["spec"]["trainer"]
    assert trainer["command"] == ["torchrun", "--module", "mmrlaif.steps.train"]
    args = launch.parse_args(trainer["args"])  # the launcher accepts exactly these
    assert (args.config_uri, args.iteration) == (URIS["config_uri"], 1)
    assert (args.policy, args.pairs, args.out) == (URIS["policy"], URIS["pairs"], URIS["out"])


def test_secrets_are_references_never_values(manifest):
    dumped = json.dumps(manifest)
    for value in ("topsecret", "AKIDSECRETID", "hunter2"):
        assert value not in dumped
    env = _env(manifest)
    assert env["AWS_SECRET_ACCESS_KEY"] == {
        "name": "AWS_SECRET_ACCESS_KEY",
        "valueFrom": {"secretKeyRef": {"name": "mmrlaif-s3", "key": "AWS_SECRET_ACCESS_KEY"}},
    }
    assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "mmrlaif-mlflow"
    # plain settings: the launching pod's S3 endpoint wins over storage.endpoint_url
    assert env["MMRLAIF_S3_ENDPOINT_URL"]["value"] == "http://minio.minio:9000"
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow.mlflow:5000"
    assert not any(name.startswith("PET_") for name in env)  # the Torch plugin's


def test_reserved_torchrun_env_is_refused():
    cfg = _cfg(env={"PET_NNODES": "9"})
    with pytest.raises(ValueError, match="PET_NNODES"):
        trainjob.build_trainjob("a-job", "ml", cfg, command_args=ARGS, iteration=1, environ={})


def test_gpu_settings_are_used_without_train_settings():
    cfg = Config(kubernetes=KubernetesConfig(trainjob=TrainJobConfig(gpus_per_node=2)))
    manifest = trainjob.build_trainjob(
        "a-job", "ml", cfg, command_args=ARGS, iteration=2, environ={}
    )
    limits = manifest["spec"]["trainer"]["resourcesPerNode"]["limits"]
    assert limits == {"nvidia.com/gpu": "2", "cpu": "16", "memory": "96Gi"}
    assert _node_patch(manifest)["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_job_names_are_deterministic_dns_labels():
    uuid = "8F0d3c1e-5b4a-4c2e-9d7f-1a2b3c4d5e6f"
    name = trainjob.trainjob_name(uuid, 3)
    assert name == trainjob.trainjob_name(uuid, 3)
    assert name != trainjob.trainjob_name(uuid, 4) != trainjob.trainjob_name(uuid[::-1], 3)
    for run_id in (uuid, "{{$.pipeline_job_uuid}}", "", "x" * 300, "Run_ID.2026/11"):
        name = trainjob.trainjob_name(run_id, 12)
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 48, name
    for bad in ("1abc", "Abc", "a" * 49, "abc-"):
        with pytest.raises(ValueError, match="TrainJob name"):
            trainjob.check_name(bad)
    assert trainjob.run_label("{{$.pipeline_job_uuid}}") == "pipeline_job_uuid"


def test_namespace_resolution(tmp_path, monkeypatch):
    cfg = _cfg()
    assert trainjob.resolve_namespace(cfg, "explicit") == "explicit"
    assert trainjob.resolve_namespace(cfg) == "ml"
    plain = Config(kubernetes=KubernetesConfig(trainjob=TrainJobConfig()))
    sa_file = tmp_path / "namespace"
    monkeypatch.setattr(trainjob, "SA_NAMESPACE_FILE", str(sa_file))
    with pytest.raises(ValueError, match=r"kubernetes\.trainjob\.namespace"):
        trainjob.resolve_namespace(plain)
    sa_file.write_text("team-a\n")
    assert trainjob.resolve_namespace(plain) == "team-a"


# --------------------------------------------------------------------------------------------
# The launcher against a loopback Kubernetes API
# --------------------------------------------------------------------------------------------

PREFIX = f"/apis/{trainjob.GROUP}/{trainjob.VERSION}/namespaces/"
NAME = "mmrlaif-dpo-run-it1"


def cond(kind: str, status: str = "True", reason: str = "", message: str = "") -> dict:
    return {"type": kind, "status": status, "reason": reason, "message": message}


class FakeKubeAPI(ThreadingHTTPServer):
    """The API server's side of TrainJob, pod list and pod log requests (no controllers).

    ``script`` is the sequence of ``status.conditions`` a newly created job reports, one
    entry per GET (the last one repeats). Pods come from ``pods`` (name -> labels) once a job
    exists; ``logs`` maps a pod name to its log text.
    """

    daemon_threads = True

    def __init__(self, script):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script, self.jobs, self.pods, self.logs = script, {}, {}, {}
        self.requests: list[tuple[str, str, dict]] = []
        self.posted: list[dict] = []
        self.on_create = lambda body: None  # what the job would do once running
        self.lock = threading.Lock()

    def add_job(self, manifest, script):
        self.jobs[manifest["metadata"]["name"]] = {"obj": manifest, "script": script, "i": 0}

    def add_pod(self, name, job, index, log, rjob="node"):
        self.pods[name] = {
            trainjob.JOBSET_NAME_LABEL: job,
            trainjob.REPLICATED_JOB_LABEL: rjob,
            "jobset.sigs.k8s.io/job-index": "0",
            trainjob.COMPLETION_INDEX_LABEL: str(index),
        }
        self.logs[name] = log

    def api_client(self) -> k8s.ApiClient:
        conf = k8s.Configuration()
        conf.host = f"http://127.0.0.1:{self.server_address[1]}"
        return k8s.ApiClient(conf)


class _Handler(BaseHTTPRequestHandler):
    server: FakeKubeAPI

    def log_message(self, *args):
        pass

    def _send(self, code: int, body, ctype: str = "application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        srv = self.server
        with srv.lock:
            srv.requests.append((method, url.path, query))
        job = re.fullmatch(PREFIX + r"([^/]+)/trainjobs(?:/([^/]+))?", url.path)
        pods = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods(?:/([^/]+)/log)?", url.path)
        if job and method == "POST":
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            srv.posted.append(body)
            if body["metadata"]["name"] in srv.jobs:
                return self._send(409, {"kind": "Status", "reason": "AlreadyExists", "code": 409})
            srv.add_job(body, srv.script)
            srv.on_create(body)
            return self._send(201, body)
        if job and job.group(2):
            entry = srv.jobs.get(job.group(2))
            if entry is None:
                return self._send(404, {"kind": "Status", "reason": "NotFound", "code": 404})
            if method == "DELETE":
                del srv.jobs[job.group(2)]
                return self._send(200, {"kind": "Status", "status": "Success"})
            conditions = entry["script"][min(entry["i"], len(entry["script"]) - 1)]
            entry["i"] += 1
            return self._send(200, entry["obj"] | {"status": {"conditions": conditions}})
        if pods and pods.group(2):
            return self._send(200, srv.logs[pods.group(2)], "text/plain")
        if pods:
            wanted = dict(s.split("=", 1) for s in query.get("labelSelector", "").split(","))
            items = [
                {"metadata": {"name": n, "labels": labels}, "status": {"phase": "Running"}}
                for n, labels in srv.pods.items()
                if labels[trainjob.JOBSET_NAME_LABEL] in srv.jobs
                and all(labels.get(k) == v for k, v in wanted.items())
            ]
            return self._send(200, {"kind": "PodList", "apiVersion": "v1", "items": items})
        return self._send(404, {"kind": "Status", "code": 404})

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_DELETE(self):
        self._route("DELETE")


@pytest.fixture()
def kube():
    servers = []

    def start(script, node0_log="step 1 loss=0.69\nstep 2 loss=0.41\ndone"):
        server = FakeKubeAPI(script)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        server.add_pod(f"{NAME}-node-0-0-x7k2p", NAME, 0, node0_log)
        server.add_pod(f"{NAME}-node-0-1-q9w4z", NAME, 1, "node 1 line\n")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _launch(server, manifest, timeout_s=10.0, **kwargs):
    lines: list[str] = []
    try:
        state = trainjob.launch_trainjob(
            manifest,
            api_client=server.api_client(),
            timeout_s=timeout_s,
            poll_s=0.02,
            log=lines.append,
            **kwargs,
        )
    except Exception as exc:
        return exc, lines
    return state, lines


def _methods(server, name):
    """The methods of the requests on the TrainJob (creation included), in order."""
    on_job = (f"/trainjobs/{name}", "/trainjobs")
    return [m for m, path, _ in server.requests if path.endswith(on_job)]


def test_complete_returns_and_streams_node0_log(kube, manifest):
    suspended = cond("Suspended", reason="Suspended", message="queued by Kueue")
    resumed = cond("Suspended", "False", reason="Resumed")
    server = kube([[], [suspended], [resumed], [resumed], [resumed, cond("Complete")]])
    state, lines = _launch(server, manifest)
    assert state == "Complete"
    assert server.posted == [manifest]  # the created object is the manifest, unchanged
    path = next(p for m, p, _ in server.requests if m == "POST")
    assert path == f"{PREFIX}ml/trainjobs"
    assert lines[:2] == [f"created TrainJob ml/{NAME}", f"TrainJob ml/{NAME}: running"]
    assert f"TrainJob ml/{NAME}: Suspended" in lines and f"TrainJob ml/{NAME}: Complete" in lines
    assert [x for x in lines if x.startswith("step") or x == "done"] == [
        "step 1 loss=0.69",
        "step 2 loss=0.41",
        "done",
    ]
    assert "node 1 line" not in lines  # only node 0 (completion index 0) is followed
    log_requests = [q for m, p, q in server.requests if p.endswith("/log")]
    # the client writes follow=True; the API server parses booleans with Go's ParseBool
    assert log_requests and all(q == {"container": "node", "follow": "True"} for q in log_requests)
    selectors = {q["labelSelector"] for m, p, q in server.requests if p.endswith("/pods")}
    assert selectors == {
        f"jobset.sigs.k8s.io/jobset-name={NAME},jobset.sigs.k8s.io/replicatedjob-name=node,"
        "batch.kubernetes.io/job-completion-index=0"
    }
    assert "DELETE" not in _methods(server, NAME)


def test_failed_raises_with_the_jobs_message(kube, manifest):
    failed = cond("Failed", reason="FailedJobs", message="jobset failed: node-0 exit code 1")
    server = kube([[], [failed]])
    exc, lines = _launch(server, manifest)
    assert isinstance(exc, RuntimeError)
    assert "FailedJobs" in str(exc) and "jobset failed: node-0 exit code 1" in str(exc)
    assert "step 1 loss=0.69" in lines  # the node-0 log still reaches the task's log


def test_timeout_deletes_the_job_and_raises(kube, manifest):
    server = kube([[]])
    start = time.monotonic()
    exc, _ = _launch(server, manifest, timeout_s=0.3)
    assert isinstance(exc, TimeoutError) and "deleted" in str(exc)
    assert time.monotonic() - start < 5
    deletes = [(p, q) for m, p, q in server.requests if m == "DELETE"]
    assert deletes == [(f"{PREFIX}ml/trainjobs/{NAME}", {"propagationPolicy": "Foreground"})]
    assert NAME not in server.jobs


def test_conflict_attaches_to_the_running_job(kube, manifest):
    server = kube([[cond("Failed")]])  # what a *new* job would do: must not be created
    server.add_job(manifest, [[], [], [cond("Complete")]])
    state, lines = _launch(server, manifest)
    assert state == "Complete"
    assert len(server.posted) == 1 and "DELETE" not in _methods(server, NAME)
    assert any("attaching" in line for line in lines)
    assert "step 2 loss=0.41" in lines


def test_conflict_with_a_failed_job_recreates_it(kube, manifest):
    server = kube([[], [cond("Complete")]])
    server.add_job(manifest, [[cond("Failed", message="earlier attempt")]])
    state, lines = _launch(server, manifest)
    assert state == "Complete"
    assert _methods(server, NAME)[:4] == ["POST", "GET", "DELETE", "GET"]
    assert server.posted == [manifest, manifest]
    assert any("failed before" in line for line in lines)


# --------------------------------------------------------------------------------------------
# The KFP task's one call: stage on S3 (moto), launch (loopback API), download
# --------------------------------------------------------------------------------------------


def test_trainjob_step_stages_launches_and_downloads(kube, s3_env, tmp_path, monkeypatch):
    policy = tmp_path / "policy"
    (policy / "model").mkdir(parents=True)
    (policy / "model" / "config.json").write_text("{}")
    (policy / "model" / "model.safetensors").write_bytes(b"weights")
    (policy / "checkpoints").mkdir()
    (policy / "checkpoints" / "big.bin").write_bytes(b"not staged")
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    (pairs / "pairs.parquet").write_bytes(b"pairs")
    job_output = tmp_path / "job-output"  # what rank 0 of the job publishes
    (job_output / "model").mkdir(parents=True)
    (job_output / "model" / "config.json").write_text('{"trained": true}')
    (job_output / "dpo.json").write_text(json.dumps({"n_pairs": 3, "seconds": 12.5}))
    stage = f"s3://{s3_env.bucket}/trainjobs"
    base = _cfg()
    tj = dataclasses.replace(base.kubernetes.trainjob, staging_uri=stage, poll_s=1)
    cfg = dataclasses.replace(base, kubernetes=dataclasses.replace(base.kubernetes, trainjob=tj))

    server = kube([[cond("Complete")]])
    server.on_create = lambda body: s3.upload_tree(
        job_output, launch.parse_args(body["spec"]["trainer"]["args"]).out
    )
    lines: list[str] = []
    run = dict(job_name=NAME, api_client=server.api_client(), log=lines.append)
    result = trainjob.trainjob_step(
        cfg, 1, policy, pairs, tmp_path / "trained", labels={"mmrlaif/run": "r9"}, **run
    )
    assert (result.state, result.namespace, result.job_name) == ("Complete", "ml", NAME)
    assert (result.n_pairs, result.train_seconds) == (3, 12.5)
    assert json.loads((tmp_path / "trained" / "model" / "config.json").read_text()) == {
        "trained": True
    }
    staged = {u.removeprefix(f"{stage}/{NAME}/") for u in s3.list_prefix(f"{stage}/{NAME}/")}
    assert {"policy/model/config.json", "policy/model/model.safetensors"} <= staged
    assert {"pairs/pairs.parquet", "config.json", "trained/dpo.json"} <= staged
    assert not any("checkpoints" in key for key in staged)
    s3.download_file(f"{stage}/{NAME}/config.json", tmp_path / "staged.json")
    assert parse_config((tmp_path / "staged.json").read_text()) == cfg
    (posted,) = server.posted
    args = launch.parse_args(posted["spec"]["trainer"]["args"])
    assert args.policy == f"{stage}/{NAME}/policy" and args.pairs == f"{stage}/{NAME}/pairs"
    assert posted["metadata"]["labels"]["mmrlaif/run"] == "r9"

    # A retried task finds its finished job: nothing is staged again, nothing created.
    def no_upload(*args, **kwargs):
        raise AssertionError("inputs staged again")

    monkeypatch.setattr(s3, "upload_tree", no_upload)
    again = trainjob.trainjob_step(cfg, 1, policy, pairs, tmp_path / "trained2", **run)
    assert again.state == "Complete" and (tmp_path / "trained2" / "dpo.json").is_file()
    assert len(server.posted) == 2 and len(server.jobs) == 1
