"""Kubernetes settings of the pipeline's tasks, from ``cfg.kubernetes`` (applied here only,
never in the components).

Every task gets the *role* its component declares (:data:`mmrlaif.pipelines.tasks.TASKS`):

- ``gpu``: base policy, sampling, labeling, POVID pairs (the noised-image answers), evaluation;
- ``train``: DPO (``kubernetes.train``, else the ``gpu`` settings);
- ``cpu``: everything else (world, pairs, selection, tracking, the TrainJob launcher).

A role decides the image, the CPU/memory requests and limits, the accelerator type and count,
the node selector and the tolerations. Every task gets the Secrets as environment variables
(names only: values never enter the compiled spec) and the plain ``kubernetes.env``. Tasks that
talk to external services (MLflow, S3 data, endpoints, the Kubernetes API) retry with backoff;
DPO retries only with a shared volume, where a retry resumes from its checkpoints.
"""

from __future__ import annotations

from kfp import dsl, kubernetes

from mmrlaif.artifacts import CHECKPOINT_DIR_ENV
from mmrlaif.config import Config, pods
from mmrlaif.pipelines.tasks import defined_tasks, kind_of

#: KFP's setter of each ``resources`` entry of :mod:`mmrlaif.config.pods`.
_REQUESTS = {"cpu": "set_cpu_request", "memory": "set_memory_request"}
_LIMITS = {"cpu": "set_cpu_limit", "memory": "set_memory_limit"}


def configure_task(task: dsl.PipelineTask, cfg: Config) -> dsl.PipelineTask:
    """Apply the Kubernetes settings of ``task``'s role."""
    k8s = cfg.kubernetes
    kind = kind_of(task.component_spec.name)
    role = kind.role
    res = pods.resources_of(k8s, role)
    task.set_container_image(pods.image_of(k8s, role))
    for name, value in pods.requests(res).items():
        getattr(task, _REQUESTS[name])(value)
    for name, value in pods.limits(res).items():
        getattr(task, _LIMITS[name])(value)
    if role != "cpu" and res.accelerator_limit:
        task.set_accelerator_type(res.accelerator_type)
        task.set_accelerator_limit(res.accelerator_limit)
        for key, value in res.node_selector.items():
            kubernetes.add_node_selector(task, key, value)
        for toleration in pods.tolerations(res):
            kubernetes.add_toleration(task, **toleration)
    for secret in k8s.secrets:  # one entry per Secret, its keys together (pods.secret_env)
        kubernetes.use_secret_as_env(
            task, secret.secret_name, dict(secret.env), optional=secret.optional
        )
    for key, value in k8s.env.items():
        task.set_env_variable(key, value)
    if k8s.image_pull_secrets:
        kubernetes.set_image_pull_secrets(task, list(k8s.image_pull_secrets))
    volume = k8s.shared_volume
    if volume is not None and kind.models:
        kubernetes.mount_pvc(task, volume.pvc_name, volume.mount_path)
        task.set_env_variable(CHECKPOINT_DIR_ENV, f"{volume.mount_path.rstrip('/')}/checkpoints")
    # DPO retries only with the shared volume, where a retry resumes from its checkpoints
    retried = kind.retried or (kind.role == "train" and volume is not None)
    if retried and k8s.retries.num_retries > 0:
        r = k8s.retries
        task.set_retry(
            r.num_retries,
            backoff_duration=r.backoff_duration,
            backoff_factor=r.backoff_factor,
            backoff_max_duration=r.backoff_max_duration,
        )
    return task


def configure_all(cfg: Config) -> None:
    """Apply :func:`configure_task` to every task of the pipeline being defined.

    Call it at the end of the pipeline function's body (the tasks exist by then).
    """
    for task in defined_tasks("configure_all"):
        configure_task(task, cfg)
