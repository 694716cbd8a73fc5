"""``cfg.kubernetes`` in Kubernetes' own terms: one translation for every pod the run starts.

The pipeline's tasks (``mmrlaif.pipelines.kube``, through KFP's task API) and the DPO TrainJob's
pods (``mmrlaif.steps.trainjob``, a manifest) both read their settings from here, so a task and
the job it launches never disagree on requests, limits, placement or Secrets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from mmrlaif.config.platform import KubernetesConfig, ResourcesConfig

#: What a task does with its pod: the roles of ``mmrlaif.pipelines.tasks.TASKS``.
Role = Literal["cpu", "gpu", "train"]


@dataclass(frozen=True)
class SecretEnv:
    """One environment variable filled from a key of a Kubernetes Secret (never its value)."""

    var: str
    secret_name: str
    key: str
    optional: bool


def resources_of(k8s: KubernetesConfig, role: Role) -> ResourcesConfig:
    """The resources of a role: ``train`` falls back to ``gpu`` when ``kubernetes.train`` is
    not set."""
    if role == "train":
        return k8s.train or k8s.gpu
    return k8s.gpu if role == "gpu" else k8s.cpu


def image_of(k8s: KubernetesConfig, role: Role) -> str:
    """The container image of a role: the CPU image for ``cpu``, the GPU image otherwise."""
    return k8s.image_for("cpu" if role == "cpu" else "gpu")


def requests(res: ResourcesConfig) -> dict[str, str]:
    """``resources.requests`` (``cpu``, ``memory``): the ones set."""
    return {k: v for k, v in (("cpu", res.cpu_request), ("memory", res.memory_request)) if v}


def limits(res: ResourcesConfig) -> dict[str, str]:
    """``resources.limits`` for CPU and memory: the ones set (accelerators apart, since a task
    and a TrainJob count them differently)."""
    return {k: v for k, v in (("cpu", res.cpu_limit), ("memory", res.memory_limit)) if v}


def tolerations(res: ResourcesConfig) -> list[dict[str, str]]:
    """``spec.tolerations``: each toleration's fields that are set."""
    return [
        {k: v for k, v in dataclasses.asdict(t).items() if v is not None} for t in res.tolerations
    ]


def secret_env(k8s: KubernetesConfig) -> list[SecretEnv]:
    """The environment variables every pod takes from ``kubernetes.secrets``, in order."""
    return [
        SecretEnv(var, secret.secret_name, key, secret.optional)
        for secret in k8s.secrets
        for key, var in secret.env.items()
    ]


__all__ = [
    "Role",
    "SecretEnv",
    "image_of",
    "limits",
    "requests",
    "resources_of",
    "secret_env",
    "tolerations",
]
