"""helm/mmrlaif: rendered offline (Helm's Go SDK through helm-python-sdk, no cluster), every
manifest validated against the Kubernetes schemas, security and RBAC checked, values checked
by values.schema.json.

What cannot run here: installing it (no cluster), the MLflow server on PostgreSQL, the hook
talking to a real Kubeflow Pipelines API. The hook's command is the CLI ``schedule`` tested in
tests/unit/pipelines/test_client.py; its config overlay is loaded here by the real loader.
"""

import ast
import re
from pathlib import Path

import helm_python  # helm-python-sdk, a dev dependency: its absence is a failure, not a skip
import kubernetes_validate
import pytest
import yaml

from mmrlaif.config import load_config
from mmrlaif.images import load_versions

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "helm" / "mmrlaif"
#: The Kubernetes version the manifests are validated for (the chart needs >= 1.29).
KUBE_VERSION = "1.33.0"
BASE = {"s3": {"bucket": "mlops-artifacts"}}
GPU = {
    "s3": {"bucket": "mlops-artifacts", "endpointUrl": "http://minio.minio.svc:9000"},
    "gpu": {
        "acceleratorType": "nvidia.com/gpu",
        "count": 2,
        "trainCount": 8,
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "tolerations": [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "pool", "operator": "Equal", "value": "h100", "effect": "NoSchedule"},
        ],
    },
    "trainer": {"enabled": True, "numNodes": 4, "globalBatchSize": 32},
    "mlflow": {
        "authSecret": "mlflow-auth",
        "backend": {
            "type": "postgresql",
            "postgresql": {"host": "pg.db.svc", "existingSecret": "mlflow-db"},
        },
    },
    "networkPolicy": {"allowedNamespaces": ["kubeflow-user-example-com"]},
    "servers": {"labeler": {"enabled": True}, "divide": {"enabled": True, "gpus": 1}},
    "imagePullSecrets": ["regcred"],
}
CREDENTIAL = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|API_KEY", re.I)


def render(values: dict) -> list[dict]:
    files = helm_python.Chart.load(CHART).render(values, name="ml", namespace="mlops")
    return [
        doc
        for path, text in sorted(files.items())
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def pod_specs(docs: list[dict]) -> list[dict]:
    return [d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("Deployment", "Job")]


@pytest.fixture(scope="module", params=["default", "gpu"])
def docs(request) -> list[dict]:
    return render(BASE if request.param == "default" else GPU)


def test_every_manifest_validates_against_the_kubernetes_schemas(docs):
    kinds = {d["kind"] for d in docs}
    assert {"ServiceAccount", "Role", "RoleBinding", "Deployment", "Service"} <= kinds
    assert {"NetworkPolicy", "ConfigMap", "Job"} <= kinds
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_containers_run_as_non_root_without_privilege_escalation(docs):
    specs = pod_specs(docs)
    assert len(specs) in (2, 4)  # MLflow server, schedule hook (+ labeler and divide servers)
    for spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] > 0
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert sc.get("privileged", False) is False
            assert sc["readOnlyRootFilesystem"] is True
            assert c["image"].split(":")[-1] == load_versions().release


def test_no_plaintext_secret_values(docs):
    assert not by_kind(docs, "Secret")  # credentials only come from existing Secrets
    for spec in pod_specs(docs):
        for c in spec["containers"]:
            for env in c.get("env", []):
                if CREDENTIAL.search(env["name"]) and not env["name"].endswith("_PATH"):
                    assert "value" not in env and "secretKeyRef" in env["valueFrom"], env
            for arg in c.get("args", []) + c.get("command", []):
                assert not re.search(r"://[^/$]+:[^@$]+@", arg), arg  # no inline user:pass@
    [config] = by_kind(docs, "ConfigMap")
    assert not CREDENTIAL.search(yaml.safe_dump(yaml.safe_load(config["data"]["site.yaml"])["kfp"]))


def _client_calls(module: Path) -> set[tuple[str, str]]:
    """(resource, verb) of every Kubernetes API call made in ``module``."""
    kinds = {
        "namespaced_custom_object": "trainjobs",
        "namespaced_pod": "pods",
        "namespaced_pod_log": "pods/log",
    }
    verbs = {"create": "create", "get": "get", "read": "get", "delete": "delete", "list": "list"}
    verbs |= {"patch": "patch", "replace": "update", "watch": "watch"}
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Attribute) and "_namespaced_" in node.attr:
            verb, _, kind = node.attr.partition("_")
            assert kind in kinds and verb in verbs, f"unmapped Kubernetes call {node.attr}"
            found.add((kinds[kind], verbs[verb]))
    return found


def test_rbac_grants_exactly_what_the_pipeline_calls():
    [role] = by_kind(render(BASE), "Role")
    granted = {
        (resource, verb)
        for rule in role["rules"]
        if rule["apiGroups"] != ["argoproj.io"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    used = _client_calls(ROOT / "src" / "mmrlaif" / "steps" / "trainjob.py")
    assert (
        granted
        == used
        == {
            ("trainjobs", "create"),
            ("trainjobs", "get"),
            ("trainjobs", "delete"),
            ("pods", "list"),
            ("pods/log", "get"),
        }
    )
    argo = [r for r in role["rules"] if r["apiGroups"] == ["argoproj.io"]]
    assert argo == [
        {
            "apiGroups": ["argoproj.io"],
            "resources": ["workflowtaskresults"],
            "verbs": ["create", "patch"],
        }
    ]
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
    [binding] = by_kind(render(BASE), "RoleBinding")
    assert (
        binding["subjects"][0]["name"]
        == by_kind(render(BASE), "ServiceAccount")[0]["metadata"]["name"]
    )
    no_trainer = render({**BASE, "rbac": {"trainJobs": False, "argoExecutor": False}})
    assert not by_kind(no_trainer, "Role") and not by_kind(no_trainer, "RoleBinding")


def test_the_hook_schedules_the_preset_with_the_cluster_overlay(tmp_path):
    docs = render(GPU)
    [job] = by_kind(docs, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    [container] = job["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:2] == ["mmrlaif", "schedule"]
    assert "--upload-pipeline=ml-rlaifv" in command
    # the preset it names ships in the image (configs/ is copied to the working dir)
    presets = [a.removeprefix("--config=") for a in command if a.startswith("--config=")]
    assert (ROOT / presets[0]).is_file() and container["workingDir"] == "/opt/mmrlaif"
    [config] = by_kind(docs, "ConfigMap")
    paths = [ROOT / presets[0]]
    for name in ("site.yaml", "overlay.yaml"):
        (tmp_path / name).write_text(config["data"][name])
        paths.append(tmp_path / name)
    cfg = load_config(paths)  # the real loader accepts the rendered overlay
    k8s = cfg.kubernetes
    assert k8s.gpu.accelerator_limit == 2 and k8s.train.accelerator_limit == 8
    assert k8s.gpu.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert [t.key for t in k8s.gpu.tolerations] == ["nvidia.com/gpu", "pool"]
    assert k8s.trainjob.num_nodes == 4
    # 4 nodes x 8 GPUs x 1 per device: the preset's global batch of 8 restated for the scale
    assert cfg.dpo.global_batch_size == 32
    assert k8s.trainjob.staging_uri == "s3://mlops-artifacts/mmrlaif/trainjobs"
    assert k8s.image_pull_secrets == ("regcred",)
    assert [s.secret_name for s in k8s.secrets] == ["mmrlaif-s3", "mlflow-auth"]
    assert k8s.env["MMRLAIF_S3_ENDPOINT_URL"] == "http://minio.minio.svc:9000"
    assert cfg.tracking.uri == "http://ml-mmrlaif-mlflow.mlops.svc.cluster.local:5000"
    assert cfg.kfp.service_account == "ml-mmrlaif"
    assert cfg.kfp.pipeline_root == "s3://mlops-artifacts/mmrlaif/pipeline-root"
    assert cfg.model.name_or_path == "llava-hf/llava-1.5-7b-hf"  # the preset underneath
    # the chart's model servers replace the preset's endpoints
    assert cfg.labeling.labeler == "openai"
    assert cfg.labeling.endpoint == "http://ml-mmrlaif-labeler.mlops.svc.cluster.local:8000/v1"
    assert cfg.labeling.llm_endpoint == "http://ml-mmrlaif-divide.mlops.svc.cluster.local:8000/v1"


def test_model_servers_land_on_the_gpu_pool():
    docs = render(GPU)
    servers = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]
        for d in by_kind(docs, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] in ("labeler", "divide")
    }
    assert set(servers) == {"ml-mmrlaif-labeler", "ml-mmrlaif-divide"}
    for name, spec in servers.items():
        [c] = spec["containers"]
        gpus = 2 if name.endswith("labeler") else 1
        assert c["resources"]["limits"]["nvidia.com/gpu"] == gpus
        assert spec["nodeSelector"] == GPU["gpu"]["nodeSelector"]
        assert spec["tolerations"] == GPU["gpu"]["tolerations"]
        assert c["image"] == f"ghcr.io/mmrlaif/mmrlaif-labeler:{load_versions().release}"
    [policy] = [
        p for p in by_kind(docs, "NetworkPolicy") if p["metadata"]["name"].endswith("-servers")
    ]
    assert policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8000}]
    services = {d["metadata"]["name"] for d in by_kind(docs, "Service")}
    assert {"ml-mmrlaif-labeler", "ml-mmrlaif-divide"} <= services
    assert not [
        d for d in by_kind(render(BASE), "Deployment") if "labeler" in d["metadata"]["name"]
    ]


def test_mlflow_server_postgres_backend_and_network_policy():
    docs = render(GPU)
    [deploy] = [
        d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "ml-mmrlaif-mlflow"
    ]
    [c] = deploy["spec"]["template"]["spec"]["containers"]
    uri = next(a for a in c["args"] if a.startswith("--backend-store-uri="))
    assert uri.startswith(
        "--backend-store-uri=postgresql://$(MLFLOW_DB_USER):$(MLFLOW_DB_PASSWORD)@"
    )
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e}
    assert refs["MLFLOW_DB_PASSWORD"] == "mlflow-db" and refs["AWS_ACCESS_KEY_ID"] == "mmrlaif-s3"
    assert "--artifacts-destination=s3://mlops-artifacts/mmrlaif/mlflow-artifacts" in c["args"]
    assert not by_kind(docs, "PersistentVolumeClaim")  # sqlite's volume only with sqlite
    [policy] = [
        p for p in by_kind(docs, "NetworkPolicy") if p["metadata"]["name"].endswith("-mlflow")
    ]
    sources = policy["spec"]["ingress"][0]["from"]
    assert {"podSelector": {}} in sources
    assert {
        "namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": "kubeflow-user-example-com"}
        }
    } in sources
    assert by_kind(render(BASE), "PersistentVolumeClaim")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "at '/s3/bucket': minLength: got 0, want 3"),
        ({**BASE, "gpu": {"count": -1}}, "at '/gpu/count': minimum: got -1, want 0"),
        ({**BASE, "pipeline": {"schedule": {"cron": "0 3 * * 1"}}}, "at '/pipeline/schedule/cron'"),
        ({**BASE, "gpus": 1}, "additional properties 'gpus' not allowed"),
        (
            {**BASE, "securityContext": {"allowPrivilegeEscalation": True}},
            "allowPrivilegeEscalation",
        ),
    ],
)
def test_values_that_break_the_schema_fail_with_a_clear_message(values, message):
    with pytest.raises(helm_python.HelmValuesError) as caught:
        helm_python.Chart.load(CHART).render(values, name="ml", namespace="mlops")
    assert message in str(caught.value)


def test_required_postgres_settings_are_named():
    values = {**BASE, "mlflow": {"backend": {"type": "postgresql"}}}
    with pytest.raises(helm_python.HelmRenderError, match="postgresql.host is required"):
        render(values)


def test_helm_lint_is_clean():
    for values in (BASE, GPU):
        report = helm_python.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
        assert report["errors"] == []
        assert [m for m in report["messages"] if m["severity"] >= 2] == []
