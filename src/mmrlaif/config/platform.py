"""The platform sections of the configuration: data sources, S3, the promotion gate, the
Kubernetes settings of the pipeline's tasks, multi-node training and the KFP server.

None of these holds a credential: S3 and MLflow credentials reach the tasks from Kubernetes
Secrets (:class:`SecretEnvConfig`) and the CLI from its environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from mmrlaif.config.strict import ConfigError
from mmrlaif.images import release_image

#: Plain environment variables whose name looks like this must come from a Secret instead.
_SECRET_LIKE = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY|API_KEY|CREDENTIAL)", re.I)


@dataclass(frozen=True)
class DataConfig:
    """Where the prompts come from.

    Attributes:
        align_prompts: A Parquet file (local path or ``s3://`` URI) of alignment prompts, one
            row per image + question (columns below); ``null`` uses the toy world's split.
        image_column: Column holding the image (HF ``Image`` layout ``{bytes, path}``).
        question_column: Column holding the instruction.
        id_column: Column holding a stable prompt id (``null``: a content hash of image and
            question).
        limit: Use at most this many prompts (``null``: all).
        prompts_prefix: Continual retraining: a folder or ``s3://`` prefix partitioned by date
            (``dt=YYYY-MM-DD/*.parquet``, columns as above). A run reads the partitions newer
            than the watermark of the last successful run (a tag on
            ``tracking.registered_model``) and skips prompts used before (by content hash);
            the watermark advances only when the run succeeds. Exclusive with
            ``align_prompts``.
        replay_fraction: Mix in this share (of the new prompts' count) of prompts from older
            partitions, drawn with ``seed``.
        ledger_uri: Where the ids of consumed prompts are kept (``null``:
            ``<prompts_prefix>/_mmrlaif_ledger``).
        seed: Seed of the replay draw.
        max_image_pixels: Imported images with more pixels are skipped (counted, with the
            reason), read from the header before decoding; PIL's own decompression-bomb warning
            threshold by default.
    """

    align_prompts: str | None = None
    image_column: str = "image"
    question_column: str = "question"
    id_column: str | None = None
    limit: int | None = None
    prompts_prefix: str | None = None
    replay_fraction: float = 0.0
    ledger_uri: str | None = None
    seed: int = 0
    max_image_pixels: int = 89_478_485

    def __post_init__(self) -> None:
        if self.max_image_pixels < 1:
            raise ConfigError(f"max_image_pixels must be >= 1, got {self.max_image_pixels}")
        if self.align_prompts and self.prompts_prefix:
            raise ConfigError("set data.align_prompts or data.prompts_prefix, not both")
        if not 0.0 <= self.replay_fraction <= 1.0:
            raise ConfigError(f"replay_fraction must be in [0, 1], got {self.replay_fraction}")

    @property
    def ledger(self) -> str | None:
        """Where consumed prompt ids are kept (``None`` without ``prompts_prefix``)."""
        if self.ledger_uri or not self.prompts_prefix:
            return self.ledger_uri
        return f"{self.prompts_prefix.rstrip('/')}/_mmrlaif_ledger"


@dataclass(frozen=True)
class StorageConfig:
    """S3 (or an S3-compatible store such as MinIO) for tables and model folders.

    Attributes:
        endpoint_url: Endpoint override (``http://minio.minio:9000``); ``MMRLAIF_S3_ENDPOINT_URL``
            in the environment wins; neither: AWS (or boto3's own ``AWS_ENDPOINT_URL_S3``).
        region: Region name (``null``: boto3's default chain).
        max_attempts: Attempts per request (botocore ``standard`` retry mode) and per
            whole transfer.
        multipart_threshold_mb: Files above this size upload in parts.
        multipart_chunk_mb: Size of one part.
    """

    endpoint_url: str | None = None
    region: str | None = None
    max_attempts: int = 5
    multipart_threshold_mb: int = 64
    multipart_chunk_mb: int = 16


@dataclass(frozen=True)
class GateConfig:
    """The promotion gate of the model registry.

    A candidate version takes the alias only if it beats the current holder on ``metric``
    (lower is better) by more than ``min_improvement`` and loses no more than the tolerances
    on Cover and POPE; otherwise it is tagged rejected with the reason.

    Attributes:
        alias: The alias the gate moves.
        metric: Primary hallucination metric, lower is better.
        min_improvement: Absolute decrease of ``metric`` required (0: any strict decrease).
        cover_tolerance: Largest allowed absolute drop in Cover (a fraction, 0.01 = 1 point).
        pope_metric: The POPE figure checked against ``pope_tolerance``.
        pope_tolerance: Largest allowed absolute drop in ``pope_metric``.
        cover_floor: Lowest Cover a model may have to be registered or promoted, whatever the
            champion (a model that names nothing - e.g. NaN weights answering empty strings,
            whose ``object_hal`` is 0 - is stopped here).
        pope_floor: Lowest ``pope_metric`` likewise (0.5 is chance on balanced POPE).
        enabled: Run the gate on the final policy at the end of the pipeline.
    """

    alias: str = "champion"
    metric: Literal["object_hal", "response_hal"] = "object_hal"
    min_improvement: float = 0.0
    cover_tolerance: float = 0.01
    pope_metric: str = "pope_adversarial_accuracy"
    pope_tolerance: float = 0.01
    cover_floor: float = 0.1
    pope_floor: float = 0.55
    enabled: bool = True

    def __post_init__(self) -> None:
        for name in ("cover_floor", "pope_floor"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class TolerationConfig:
    """A Kubernetes toleration (of a GPU node pool's taint)."""

    key: str
    operator: Literal["Equal", "Exists"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = "NoSchedule"


@dataclass(frozen=True)
class ResourcesConfig:
    """Requests, limits and placement of one class of tasks.

    Attributes:
        cpu_request: CPU request (``"4"``, ``"500m"``); ``null``: none.
        cpu_limit: CPU limit.
        memory_request: Memory request (``"16Gi"``).
        memory_limit: Memory limit.
        accelerator_type: Extended resource of the accelerator (``nvidia.com/gpu``).
        accelerator_limit: Accelerators per task (0: none).
        node_selector: Node labels the task must land on (the GPU node pool).
        tolerations: Taints of that pool the task tolerates.
    """

    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    accelerator_type: str = "nvidia.com/gpu"
    accelerator_limit: int = 0
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[TolerationConfig, ...] = ()

    def __post_init__(self) -> None:
        if self.accelerator_limit < 0:
            raise ConfigError(f"accelerator_limit must be >= 0, got {self.accelerator_limit}")


@dataclass(frozen=True)
class SecretEnvConfig:
    """Environment variables filled from the keys of one Kubernetes Secret.

    Attributes:
        secret_name: The Secret (created by the Helm chart or by hand; never by this code).
        env: Secret key -> environment variable name.
        optional: The task starts even when the Secret is missing (e.g. an MLflow server
            without authentication).
    """

    secret_name: str
    env: Mapping[str, str] = field(default_factory=dict)
    optional: bool = False


@dataclass(frozen=True)
class RetryConfig:
    """Retries with backoff for tasks that reach external services (S3, MLflow, endpoints)."""

    num_retries: int = 2
    backoff_duration: str = "30s"
    backoff_factor: float = 2.0
    backoff_max_duration: str = "600s"


@dataclass(frozen=True)
class SharedVolumeConfig:
    """An existing ReadWriteMany PersistentVolumeClaim mounted into the model-handling tasks.

    DPO writes its checkpoints there, so a retried or resumed training task picks up where it
    stopped instead of starting over.
    """

    pvc_name: str
    mount_path: str = "/mnt/mmrlaif"


@dataclass(frozen=True)
class TrainJobConfig:
    """Multi-node DPO as a Kubeflow Trainer v2 ``TrainJob`` (runtime ``torch-distributed``).

    Attributes:
        num_nodes: Nodes (pods) of the job.
        gpus_per_node: Accelerators per node (torchrun starts one process per GPU).
        runtime: The ``ClusterTrainingRuntime`` the job refers to.
        namespace: Namespace of the TrainJob (``null``: the launching pod's namespace).
        staging_uri: ``s3://`` prefix where the job reads its inputs and writes the model.
        timeout_s: Give up (and delete the job) after this long.
        poll_s: Seconds between status checks.
    """

    num_nodes: int = 2
    gpus_per_node: int = 8
    runtime: str = "torch-distributed"
    namespace: str | None = None
    staging_uri: str = "s3://mmrlaif/trainjobs"
    timeout_s: int = 48 * 3600
    poll_s: int = 30

    def __post_init__(self) -> None:
        if self.num_nodes < 1 or self.gpus_per_node < 1:
            raise ConfigError("num_nodes and gpus_per_node must be >= 1")
        if not self.staging_uri.startswith("s3://"):
            raise ConfigError(f"staging_uri must be s3://..., got {self.staging_uri!r}")


@dataclass(frozen=True)
class KubernetesConfig:
    """How the pipeline's tasks run on the cluster (compiled into the pipeline spec).

    Attributes:
        image_registry: Registry holding the release images (``null``: the one named in
            ``images/versions.yaml``); the images are ``<registry>/<name>:<release>``.
        image: Image of the CPU tasks (``null``: the release's ``cpu`` image, built from
            ``images/cpu.Dockerfile``).
        gpu_image: Image of the GPU tasks (``null``: the release's ``gpu`` image: CUDA, torch,
            DeepSpeed).
        image_pull_secrets: Secrets for a private registry.
        cpu: Settings of the CPU tasks (world, pairs, selection, tracking).
        gpu: Settings of the GPU tasks (base policy, sampling, labeling, evaluation).
        train: Settings of the DPO task (``null``: as ``gpu``); with several accelerators the
            task trains single-node multi-GPU.
        secrets: Secrets exposed as environment variables to every task.
        env: Plain (non-secret) environment of every task, e.g. ``MLFLOW_TRACKING_URI``; a
            name that looks like a credential is refused here.
        retries: Retries of the tasks that talk to external services.
        shared_volume: A PVC for large checkpoints (``null``: none).
        trainjob: Train DPO as a multi-node TrainJob (``null``: inside the KFP task).
    """

    image_registry: str | None = None
    image: str | None = None
    gpu_image: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    cpu: ResourcesConfig = field(
        default_factory=lambda: ResourcesConfig(
            cpu_request="1", cpu_limit="2", memory_request="2Gi", memory_limit="4Gi"
        )
    )
    gpu: ResourcesConfig = field(
        default_factory=lambda: ResourcesConfig(
            cpu_request="8",
            cpu_limit="16",
            memory_request="64Gi",
            memory_limit="96Gi",
            accelerator_limit=1,
            tolerations=(TolerationConfig(key="nvidia.com/gpu"),),
        )
    )
    train: ResourcesConfig | None = None
    secrets: tuple[SecretEnvConfig, ...] = (
        SecretEnvConfig(
            "mmrlaif-s3",
            {
                "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
            },
        ),
        SecretEnvConfig(
            "mmrlaif-mlflow",
            {
                "MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
                "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD",
            },
            optional=True,
        ),
    )
    env: Mapping[str, str] = field(default_factory=dict)
    retries: RetryConfig = field(default_factory=RetryConfig)
    shared_volume: SharedVolumeConfig | None = None
    trainjob: TrainJobConfig | None = None

    def __post_init__(self) -> None:
        bad = sorted(name for name in self.env if _SECRET_LIKE.search(name))
        if bad:
            raise ConfigError(
                f"{', '.join(bad)} look(s) like credentials; "
                "pass them through kubernetes.secrets (a Kubernetes Secret) instead"
            )

    def image_for(self, role: str) -> str:
        """The image of ``role`` (``cpu`` or ``gpu``): the configured one, else the release's."""
        configured = {"cpu": self.image, "gpu": self.gpu_image}[role]
        if configured:
            return configured

        return release_image(role, self.image_registry)


@dataclass(frozen=True)
class ScheduleConfig:
    """A recurring run on the KFP server.

    Attributes:
        name: Name of the recurring run (an existing one of that name is replaced).
        cron: Six-field cron expression, seconds first (``0 0 3 * * 1``: Mondays 03:00).
        max_concurrency: Runs of the schedule allowed at once.
        catchup: Run the intervals missed while paused (off: a retraining schedule never
            replays stale dates).
    """

    name: str = "mmrlaif-retraining"
    cron: str = "0 0 3 * * 1"
    max_concurrency: int = 1
    catchup: bool = False

    def __post_init__(self) -> None:
        if len(self.cron.split()) != 6:
            raise ConfigError(
                f"cron {self.cron!r} must have 6 fields (seconds first), e.g. '0 0 3 * * 1'"
            )
        if self.max_concurrency < 1:
            raise ConfigError("max_concurrency must be >= 1")


@dataclass(frozen=True)
class KFPConfig:
    """The Kubeflow Pipelines server the CLI submits to (every field can be given on the
    command line instead).

    Attributes:
        host: API endpoint (``KFP_HOST`` in the environment wins when this is ``null``).
        namespace: Kubeflow profile namespace of the runs.
        experiment: KFP experiment of the runs.
        service_account: Kubernetes ServiceAccount the run's pods use.
        pipeline_root: Where KFP stores artifacts (``s3://bucket/pipeline-root``).
        schedule: The recurring run.
    """

    host: str | None = None
    namespace: str = "kubeflow"
    experiment: str = "mmrlaif"
    service_account: str | None = "mmrlaif-pipeline"
    pipeline_root: str | None = None
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
