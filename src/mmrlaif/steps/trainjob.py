"""Multi-node DPO as a Kubeflow Trainer v2 ``TrainJob`` (Trainer v2.3.0, ``torch-distributed``).

The KFP task stages its inputs on S3, creates a ``TrainJob`` whose nodes run
``torchrun --module mmrlaif.steps.train`` (the runtime's Torch plugin injects ``PET_NNODES``,
``PET_NPROC_PER_NODE``, ``PET_NODE_RANK``, ``PET_MASTER_ADDR`` and ``PET_MASTER_PORT``, which
``torchrun`` reads), follows the job and node 0's log, and downloads the trained policy. GPU
placement goes through ``spec.runtimePatches`` (v2.3's replacement of ``podTemplateOverrides``).
Credentials reach the job only as ``secretKeyRef`` s, never as values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from mmrlaif import artifacts
from mmrlaif.config import Config, TrainJobConfig, config_to_json, pods
from mmrlaif.io import s3

logger = logging.getLogger(__name__)

TRAINER_VERSION = "v2.3.0"
GROUP, VERSION, KIND, PLURAL = "trainer.kubeflow.org", "v1alpha1", "TrainJob", "trainjobs"
API_VERSION = f"{GROUP}/{VERSION}"
#: ReplicatedJob and container name of the training nodes in the torch-distributed runtime.
NODE = "node"
#: Pod labels set by JobSet / the Job controller (the Kubeflow SDK selects by the first two).
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
REPLICATED_JOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
COMPLETION_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
#: Owner of this code's entry in ``spec.runtimePatches``.
PATCH_MANAGER = "mmrlaif/trainjob-launcher"
LAUNCH_MODULE = "mmrlaif.steps.train"
#: Pod hostnames are ``<job>-node-<i>-<j>`` and must stay DNS labels (63 characters).
MAX_NAME_LEN = 48
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # RFC 1035, as the TrainJob CRD requires
# Non-secret settings of the launching pod that the job's pods need to reach S3.
_FORWARD_ENV = re.compile(r"^(MMRLAIF_S3_[A-Z0-9_]+|AWS_ENDPOINT_URL(_S3)?|AWS_(DEFAULT_)?REGION)$")


def trainjob_name(run_id: str, iteration: int, prefix: str = "mmrlaif-dpo") -> str:
    """A deterministic job name for one pipeline run and iteration (a retried task gets the
    same one): RFC 1035, at most :data:`MAX_NAME_LEN` characters, a hash keeps it unique."""
    slug = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")[:12].strip("-")
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return check_name("-".join(p for p in (prefix, slug, digest, f"it{iteration}") if p))


def check_name(name: str) -> str:
    """Return ``name``; raise ``ValueError`` unless it is a valid TrainJob name here."""
    if len(name) > MAX_NAME_LEN or not _NAME_RE.match(name):
        raise ValueError(
            f"TrainJob name {name!r}: must match {_NAME_RE.pattern}, <= {MAX_NAME_LEN}"
        )
    return name


def run_label(run_id: str) -> str:
    """``run_id`` as a Kubernetes label value."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id)[:63].strip("-_.")


def launch_args(config_uri: str, iteration: int, policy: str, pairs: str, out: str) -> list[str]:
    """Arguments of :mod:`mmrlaif.steps.train`."""
    flags = ("--config-uri", "--iteration", "--policy", "--pairs", "--out")
    values = (config_uri, str(iteration), policy, pairs, out)
    return [x for pair in zip(flags, values, strict=True) for x in pair]


def _trainjob_cfg(cfg: Config) -> TrainJobConfig:
    if cfg.kubernetes.trainjob is None:
        raise ValueError("kubernetes.trainjob is not set: DPO runs inside the KFP task")
    return cfg.kubernetes.trainjob


def job_env(cfg: Config, environ: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The training container's environment: S3 settings forwarded from ``environ`` (chosen by
    name, never a credential), ``storage`` defaults, ``kubernetes.env``, then each Secret key
    as a ``secretKeyRef``. ``PET_*`` names belong to the Torch plugin and are refused."""
    environ = os.environ if environ is None else environ
    env = {"PYTHONUNBUFFERED": "1"} | {k: v for k, v in environ.items() if _FORWARD_ENV.match(k)}
    for var, value in (("ENDPOINT_URL", cfg.storage.endpoint_url), ("REGION", cfg.storage.region)):
        if value:
            env.setdefault(f"MMRLAIF_S3_{var}", value)
    out = {k: {"name": k, "value": v} for k, v in (env | dict(cfg.kubernetes.env)).items()}
    for ref in pods.secret_env(cfg.kubernetes):
        key_ref = {"name": ref.secret_name, "key": ref.key} | (
            {"optional": True} if ref.optional else {}
        )
        out[ref.var] = {"name": ref.var, "valueFrom": {"secretKeyRef": key_ref}}
    if reserved := sorted(k for k in out if k.startswith("PET_")):
        raise ValueError(f"{', '.join(reserved)}: reserved for the Trainer's Torch plugin")
    return list(out.values())


def build_trainjob(
    name: str,
    namespace: str,
    cfg: Config,
    *,
    command_args: Sequence[str],
    iteration: int,
    image: str | None = None,
    labels: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The TrainJob manifest (Trainer v2.3, ``trainer.kubeflow.org/v1alpha1``).

    Args:
        name: Job name (see :func:`trainjob_name`).
        namespace: Its namespace; the Secrets of ``kubernetes.secrets`` must exist there.
        cfg: The configuration; ``kubernetes.trainjob`` must be set. CPU, memory and placement
            come from ``kubernetes.train`` (else ``kubernetes.gpu``), the accelerators per node
            from ``trainjob.gpus_per_node``.
        command_args: Arguments of the launcher (:func:`launch_args`).
        iteration: The pipeline iteration (a label).
        image: Training image (default ``kubernetes.gpu_image``).
        labels: Extra labels of the job and its pods (e.g. the pipeline run).
        environ: Environment to forward S3 settings from (default ``os.environ``).
    """
    tj = _trainjob_cfg(cfg)
    res = pods.resources_of(cfg.kubernetes, "train")
    all_labels = {
        "app.kubernetes.io/name": "mmrlaif",
        "app.kubernetes.io/component": "dpo-trainjob",
        "mmrlaif/iteration": str(iteration),
    } | dict(labels or {})
    limits = {res.accelerator_type: str(tj.gpus_per_node)} | pods.limits(res)
    requests = pods.requests(res)
    pod: dict[str, Any] = {}
    if res.node_selector:
        pod["nodeSelector"] = dict(res.node_selector)
    if res.tolerations:
        pod["tolerations"] = pods.tolerations(res)
    if cfg.kubernetes.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in cfg.kubernetes.image_pull_secrets]
    pod_template = {"metadata": {"labels": dict(all_labels)}, "spec": pod}
    rjob = {"name": NODE, "template": {"spec": {"template": pod_template}}}
    patch = {"template": {"spec": {"replicatedJobs": [rjob]}}}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": check_name(name), "namespace": namespace, "labels": all_labels},
        "spec": {
            "runtimeRef": {"apiGroup": GROUP, "kind": "ClusterTrainingRuntime", "name": tj.runtime},
            "activeDeadlineSeconds": tj.timeout_s,
            "trainer": {
                "image": image or pods.image_of(cfg.kubernetes, "train"),
                "command": ["torchrun", "--module", LAUNCH_MODULE],
                "args": list(command_args),
                "env": job_env(cfg, environ),
                "numNodes": tj.num_nodes,
                "numProcPerNode": tj.gpus_per_node,
                "resourcesPerNode": {"limits": limits}
                | ({"requests": requests} if requests else {}),
            },
            "runtimePatches": [{"manager": PATCH_MANAGER, "trainingRuntimeSpec": patch}],
        },
    }


def _default_api_client() -> client.ApiClient:
    # lazy: the kubernetes client only when a TrainJob is created
    from kubernetes import config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def _true_conditions(obj: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return {c["type"]: c for c in conds if c.get("status") == "True"}


class _Job:
    """One TrainJob through ``CustomObjectsApi`` and its node-0 pod through ``CoreV1Api``."""

    def __init__(self, api_client: client.ApiClient, namespace: str, name: str):
        self.api, self.core = client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)
        self.ns, self.name, self._ids = namespace, name, (GROUP, VERSION, namespace, PLURAL)

    def get(self) -> dict[str, Any] | None:
        try:
            return self.api.get_namespaced_custom_object(*self._ids, self.name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, manifest: Mapping[str, Any]) -> bool:
        """Create the job; ``False`` when one of that name exists already (409)."""
        try:
            self.api.create_namespaced_custom_object(*self._ids, manifest)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def delete(self, wait_s: float = 0.0, poll_s: float = 1.0) -> None:
        self.api.delete_namespaced_custom_object(
            *self._ids, self.name, propagation_policy="Foreground"
        )
        deadline = time.monotonic() + wait_s
        while wait_s and self.get() is not None and time.monotonic() < deadline:
            time.sleep(poll_s)

    def stream_node0_logs(self, log: Callable[[str], None], stop: threading.Event, every: float):
        """Follow each node-0 pod's log once it runs; a last pass after ``stop`` is set."""
        selector = f"{JOBSET_NAME_LABEL}={self.name},{REPLICATED_JOB_LABEL}={NODE}"
        selector += f",{COMPLETION_INDEX_LABEL}=0"
        streamed, warned = set(), False
        while True:
            last = stop.is_set()
            try:
                for pod in self.core.list_namespaced_pod(self.ns, label_selector=selector).items:
                    pod_name = pod.metadata.name
                    if pod_name in streamed or (pod.status and pod.status.phase == "Pending"):
                        continue
                    resp = self.core.read_namespaced_pod_log(
                        pod_name, self.ns, container=NODE, follow=True, _preload_content=False
                    )
                    streamed.add(pod_name)
                    buf = b""
                    for chunk in resp.stream(4096):
                        *lines, buf = (buf + chunk).split(b"\n")
                        for line in lines:
                            log(line.decode(errors="replace"))
                    if buf:
                        log(buf.decode(errors="replace"))
                    resp.release_conn()
            except Exception as exc:  # the log is a courtesy: never stop following the job
                (logger.debug if warned else logger.warning)("node-0 log of %s: %s", self.name, exc)
                warned = True
            if last:
                return
            stop.wait(every)


def launch_trainjob(
    manifest: Mapping[str, Any],
    *,
    api_client: client.ApiClient | None = None,
    timeout_s: float,
    poll_s: float,
    log: Callable[[str], None] = print,
    drain_s: float = 30.0,
) -> str:
    """Create the TrainJob (or attach to the one of that name) and wait until it ends.

    A job of that name that exists already (a retried KFP task) is followed instead; one that
    ``Failed`` is deleted and created again. ``status.conditions`` are polled every ``poll_s``
    seconds (Trainer v2.3 types: ``Suspended``, ``Complete``, ``Failed``) while node 0's log is
    streamed to ``log`` line by line (``drain_s``: how long to wait for its end).

    Returns:
        ``"Complete"``.

    Raises:
        RuntimeError: The job failed; with its condition's reason and message.
        TimeoutError: Not finished after ``timeout_s`` seconds; the job is deleted first.
    """
    name, ns = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    job = _Job(api_client or _default_api_client(), ns, name)
    if job.create(manifest):
        log(f"created TrainJob {ns}/{name}")
    elif "Failed" in _true_conditions(job.get()):
        log(f"TrainJob {ns}/{name} exists and failed before: deleting and creating it again")
        job.delete(wait_s=min(timeout_s, 600), poll_s=min(poll_s, 5))
        job.create(manifest)
    else:
        log(f"TrainJob {ns}/{name} exists already: attaching to it")
    stop = threading.Event()
    streamer = threading.Thread(
        target=job.stream_node0_logs, args=(log, stop, min(poll_s, 5.0)), daemon=True
    )
    deadline, seen = time.monotonic() + timeout_s, None
    try:
        while True:
            conds = _true_conditions(job.get())
            if sorted(conds) != seen:
                seen = sorted(conds)
                log(f"TrainJob {ns}/{name}: {', '.join(seen) or 'running'}")
            if streamer.ident is None:
                streamer.start()  # after the job's first state, so that it is logged first
            if "Complete" in conds or "Failed" in conds:
                stop.set()
                streamer.join(drain_s)
                if failed := conds.get("Failed"):
                    reason, message = failed.get("reason"), failed.get("message")
                    raise RuntimeError(f"TrainJob {ns}/{name} failed ({reason}): {message}")
                return "Complete"
            if time.monotonic() >= deadline:
                job.delete()
                raise TimeoutError(f"TrainJob {ns}/{name} not done after {timeout_s}s: deleted")
            time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))
    finally:
        stop.set()


def resolve_namespace(cfg: Config, namespace: str | None = None) -> str:
    """``namespace``, else ``kubernetes.trainjob.namespace``, else this pod's namespace."""
    if found := namespace or (cfg.kubernetes.trainjob and cfg.kubernetes.trainjob.namespace):
        return found
    try:
        return Path(SA_NAMESPACE_FILE).read_text().strip()
    except OSError as exc:
        raise ValueError(
            "no namespace for the TrainJob: set kubernetes.trainjob.namespace"
        ) from exc


@dataclasses.dataclass(frozen=True)
class TrainJobResult:
    """Outcome of :func:`trainjob_step` (``seconds``: staging, job and download)."""

    job_name: str
    namespace: str
    state: str
    seconds: float
    trained_uri: str
    n_pairs: int = 0
    train_seconds: float = 0.0


def trainjob_step(
    cfg: Config,
    iteration: int,
    policy_dir: str | Path,
    pairs_dir: str | Path,
    trained_dir: str | Path,
    *,
    job_name: str,
    namespace: str | None = None,
    labels: Mapping[str, str] | None = None,
    api_client: client.ApiClient | None = None,
    log: Callable[[str], None] = print,
) -> TrainJobResult:
    """One iteration's DPO as a TrainJob, from and to the KFP task's local artifacts.

    Stages the policy's ``model/``, the pairs folder and the config JSON under
    ``<staging_uri>/<job_name>/`` (``policy/model``, ``pairs``, ``config.json``; skipped when
    a job of that name exists and has not failed), launches the job (``labels`` added to it
    and its pods), and downloads ``<staging_uri>/<job_name>/trained`` (a policy run folder)
    into ``trained_dir``. S3 settings: ``MMRLAIF_S3_*``, else ``storage``.
    """
    start, tj = time.perf_counter(), _trainjob_cfg(cfg)
    ns = resolve_namespace(cfg, namespace)
    api_client = api_client or _default_api_client()
    settings = s3.current_settings()
    settings = dataclasses.replace(
        settings,
        endpoint_url=settings.endpoint_url or cfg.storage.endpoint_url,
        region=settings.region or cfg.storage.region,
    )
    stage = f"{tj.staging_uri.rstrip('/')}/{job_name}"
    uris = {k: f"{stage}/{k}" for k in ("config.json", "policy", "pairs")}
    out = f"{stage}/trained"
    existing = _Job(api_client, ns, job_name).get()
    if existing is None or "Failed" in _true_conditions(existing):
        s3.upload_tree(artifacts.model_dir(policy_dir), f"{uris['policy']}/model", settings)
        s3.upload_tree(pairs_dir, uris["pairs"], settings)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "config.json").write_text(config_to_json(cfg))
            s3.upload_file(Path(tmp) / "config.json", uris["config.json"], settings)
    args = launch_args(uris["config.json"], iteration, uris["policy"], uris["pairs"], out)
    manifest = build_trainjob(
        job_name, ns, cfg, command_args=args, iteration=iteration, labels=labels
    )
    state = launch_trainjob(
        manifest, api_client=api_client, timeout_s=tj.timeout_s, poll_s=tj.poll_s, log=log
    )
    s3.download_tree(out, trained_dir, settings)
    report = Path(trained_dir) / "dpo.json"
    dpo = json.loads(report.read_text()) if report.is_file() else {}
    seconds = time.perf_counter() - start
    logger.info("TrainJob %s/%s: %s in %.0f s", ns, job_name, state, seconds)
    n_pairs, train_seconds = dpo.get("n_pairs", 0), dpo.get("seconds", 0.0)
    return TrainJobResult(job_name, ns, state, seconds, out, n_pairs, train_seconds)
