"""Kubernetes settings in the compiled pipeline: per task GPUs, placement, Secrets, caching,
retries, images and the shared volume; no credential value anywhere.

No cluster runs here: these check the compiled spec a KFP server would execute.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mmrlaif.config import ConfigError, load_config
from mmrlaif.pipelines import compile_pipeline

PRESET = "configs/llava15_7b/rlaifv.yaml"
SECRET_VALUES = {
    "AWS_SECRET_ACCESS_KEY": "topsecret-aws-value-1234",
    "AWS_ACCESS_KEY_ID": "AKIATOPSECRETKEYID",
    "MLFLOW_TRACKING_PASSWORD": "topsecret-mlflow-password",
    "OPENAI_API_KEY": "sk-topsecret-openai",
}


def _compile(path: Path, overrides: dict | None = None) -> tuple[str, dict, dict]:
    cfg = load_config(PRESET, overrides)
    compile_pipeline(cfg, path)
    text = path.read_text()
    spec, platform = yaml.safe_load_all(text)
    return text, spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, dict]:
    mp = pytest.MonkeyPatch()
    for key, value in SECRET_VALUES.items():
        mp.setenv(key, value)
    try:
        return _compile(tmp_path_factory.mktemp("kube") / "p.yaml")
    finally:
        mp.undo()


def _executor(spec: dict, task: str) -> str:
    comp = spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]
    return spec["components"][comp]["executorLabel"]


def test_gpu_tasks_get_accelerators_placement_and_gpu_image(compiled) -> None:
    _, spec, platform = compiled
    for task, count in (("sample", 1), ("label", 1), ("evaluate", 1), ("train-dpo", 8)):
        ex = _executor(spec, task)
        container = spec["deploymentSpec"]["executors"][ex]["container"]
        accel = container["resources"]["accelerator"]
        assert accel["resourceType"] == "nvidia.com/gpu", task
        assert int(accel["resourceCount"]) == count, task
        assert container["image"] == "ghcr.io/mmrlaif/mmrlaif-gpu:0.1.0"
        k8s = platform[ex]
        assert k8s["nodeSelector"]["labels"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in k8s[
            "tolerations"
        ]
    train = spec["deploymentSpec"]["executors"][_executor(spec, "train-dpo")]["container"]
    assert train["resources"]["resourceMemoryLimit"] == "768Gi"


def test_cpu_tasks_get_no_gpu_and_the_cpu_image(compiled) -> None:
    _, spec, platform = compiled
    for task in ("prepare-world", "build-pairs", "select-policy", "start-tracking", "register"):
        ex = _executor(spec, task)
        container = spec["deploymentSpec"]["executors"][ex]["container"]
        assert "accelerator" not in container.get("resources", {}), task
        assert container["image"] == "ghcr.io/mmrlaif/mmrlaif:0.1.0"
        assert "tolerations" not in platform[ex] and "nodeSelector" not in platform[ex]
        assert container["resources"]["resourceCpuRequest"] == "1"


def test_every_task_gets_the_secrets_by_name(compiled) -> None:
    _, spec, platform = compiled
    assert set(platform) == set(spec["deploymentSpec"]["executors"])
    for ex, k8s in platform.items():
        secrets = {s["secretName"]: s for s in k8s["secretAsEnv"]}
        assert set(secrets) == {"mmrlaif-s3", "mmrlaif-mlflow"}, ex
        envs = {e["envVar"] for e in secrets["mmrlaif-s3"]["keyToEnv"]}
        assert envs == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        assert secrets["mmrlaif-mlflow"]["optional"] is True


def test_no_credential_value_anywhere(compiled) -> None:
    text, _, _ = compiled
    for value in SECRET_VALUES.values():
        assert value not in text


def test_caching_off_for_sampling_labeling_evaluation_and_tracking(compiled) -> None:
    _, spec, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    off = [n for n, t in tasks.items() if not t.get("cachingOptions", {}).get("enableCache")]
    on = [n for n in tasks if n not in off]
    for prefix in ("sample", "label", "evaluate", "select-policy", "log-", "register", "start-"):
        assert any(n.startswith(prefix) for n in off), prefix
        assert not any(n.startswith(prefix) for n in on), prefix
    # prompts come from S3 in this preset: the world task is not cached either
    assert "prepare-world" in off
    assert set(on) >= {"base-policy", "build-pairs", "train-dpo"}


def test_retries_where_failures_are_transient(compiled) -> None:
    _, spec, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    policy = {
        "maxRetryCount": 2,
        "backoffDuration": "30s",
        "backoffFactor": 2.0,
        "backoffMaxDuration": "600s",
    }
    for name in ("sample", "label", "start-tracking", "register", "finish-tracking"):
        assert tasks[name]["retryPolicy"] == policy, name
    # the preset has a shared volume: DPO retries and resumes from its checkpoints there
    assert tasks["train-dpo"]["retryPolicy"] == policy
    assert "retryPolicy" not in tasks["evaluate"]


def test_shared_volume_mounted_for_model_tasks(compiled) -> None:
    _, spec, platform = compiled
    train = _executor(spec, "train-dpo")
    assert platform[train]["pvcMount"][0]["mountPath"] == "/mnt/mmrlaif"
    assert platform[train]["pvcMount"][0]["pvcNameParameter"]["runtimeValue"] == {
        "constant": "mmrlaif-checkpoints"
    }
    env = {
        e["name"]: e["value"]
        for e in spec["deploymentSpec"]["executors"][train]["container"]["env"]
    }
    assert env["MMRLAIF_CHECKPOINT_DIR"] == "/mnt/mmrlaif/checkpoints"
    assert "pvcMount" not in platform[_executor(spec, "sample")]


def test_without_volume_dpo_is_not_retried(tmp_path: Path) -> None:
    _, spec, platform = _compile(
        tmp_path / "p.yaml", {"kubernetes.shared_volume": None, "pipeline.iterations": 1}
    )
    assert "retryPolicy" not in spec["root"]["dag"]["tasks"]["train-dpo"]
    assert all("pvcMount" not in k8s for k8s in platform.values())


def test_credential_in_plain_env_is_refused() -> None:
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_PASSWORD.*kubernetes.secrets"):
        load_config(PRESET, {"kubernetes.env": {"MLFLOW_TRACKING_PASSWORD": "x"}})


def test_local_runs_get_no_kubernetes_settings() -> None:
    """kfp.local ignores them; the local build leaves them out altogether."""
    from kfp import compiler

    from mmrlaif.pipelines.build import build_pipeline

    cfg = load_config(PRESET, {"pipeline.iterations": 1})
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "local.yaml"
        compiler.Compiler().compile(build_pipeline(cfg, on_kubernetes=False), str(out))
        docs = list(yaml.safe_load_all(out.read_text()))
    assert len(docs) == 1
    assert "retryPolicy" not in yaml.safe_dump(docs[0])


def test_sharded_sampling_and_labeling_run_as_parallel_gpu_tasks(tmp_path) -> None:
    overrides = {"pipeline.shards": 8, "pipeline.max_parallel_shards": 4, "pipeline.iterations": 1}
    _, spec, executors = _compile(tmp_path / "p.yaml", overrides)
    tasks = spec["root"]["dag"]["tasks"]
    [loop] = [name for name in tasks if name.startswith("for-loop")]
    assert tasks[loop]["iteratorPolicy"] == {"parallelismLimit": 4}
    items = tasks[loop]["parameterIterator"]["items"]["raw"]
    assert yaml.safe_load(items) == list(range(8))
    inner = spec["components"][tasks[loop]["componentRef"]["name"]]["dag"]["tasks"]
    assert set(inner) == {"sample", "label"}
    deployment = spec["deploymentSpec"]["executors"]
    for task in inner.values():
        label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        resources = deployment[label]["container"]["resources"]
        assert resources["accelerator"]["resourceCount"] == "1"  # one GPU per shard task
        assert executors[label]["tolerations"][0]["key"] == "nvidia.com/gpu"
        assert executors[label]["nodeSelector"]["labels"]["nvidia.com/gpu.product"]
        assert task["cachingOptions"] == {}  # caching off: fresh samples every run
    merge = tasks["merge-shards"]
    assert merge["dependentTasks"] == [loop]
    assert "accelerator" not in deployment[_executor(spec, "merge-shards")]["container"].get(
        "resources", {}
    )
    assert tasks["build-pairs"]["inputs"]["artifacts"]["feedback"]["taskOutputArtifact"] == {
        "outputArtifactKey": "merged_feedback",
        "producerTask": "merge-shards",
    }
