"""Configuration: one frozen dataclass per stage, loaded from YAML presets.

Every preset under ``configs/`` is a YAML mapping whose top-level keys are the stage names of
:class:`Config`. Loading is strict: an unknown key or a value of the wrong type raises
:class:`ConfigError` naming the dotted key (``sft.epochs``), so a typo never silently falls back
to a default. Trainer arguments are passed through to the trainer's own config class
(``transformers.TrainingArguments``) rather than redeclared here, and are checked by it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmrlaif.config.dpo import LANGUAGE_MODEL_LORA_TARGETS, DPOConfig, LoRAConfig
from mmrlaif.config.estimate import EstimateConfig
from mmrlaif.config.evaluation import BenchmarksConfig, EvalConfig
from mmrlaif.config.model import ModelConfig, SFTConfig, TinyVLMConfig, WorldConfig
from mmrlaif.config.pipeline import PipelineConfig, TrackingConfig
from mmrlaif.config.platform import (
    DataConfig,
    GateConfig,
    KFPConfig,
    KubernetesConfig,
    ResourcesConfig,
    RetryConfig,
    ScheduleConfig,
    SecretEnvConfig,
    SharedVolumeConfig,
    StorageConfig,
    TolerationConfig,
    TrainJobConfig,
)
from mmrlaif.config.povid import POVIDConfig, POVIDStageConfig, check_povid
from mmrlaif.config.rlaifv import LabelingConfig, PairsConfig, SamplingConfig
from mmrlaif.config.selection import (
    BENCHMARK_SELECT_METRICS,
    LATEST_METRIC,
    TOY_SELECT_METRICS,
    TOYWORLD_DATA,
    selection_benchmark,
)
from mmrlaif.config.strict import (
    ConfigError,
    from_dict,
    load_yaml,
    overlay,
    set_dotted,
    to_dict,
)
from mmrlaif.io import s3

__all__ = [
    "BENCHMARK_SELECT_METRICS",
    "DPO_PER_DEVICE_DEFAULT",
    "LANGUAGE_MODEL_LORA_TARGETS",
    "LATEST_METRIC",
    "MODEL_PATH_KEYS",
    "TOYWORLD_DATA",
    "TOY_SELECT_METRICS",
    "BenchmarksConfig",
    "Config",
    "ConfigError",
    "DPOConfig",
    "DataConfig",
    "EstimateConfig",
    "EvalConfig",
    "GateConfig",
    "KFPConfig",
    "KubernetesConfig",
    "LabelingConfig",
    "LoRAConfig",
    "ModelConfig",
    "POVIDConfig",
    "POVIDStageConfig",
    "PairsConfig",
    "PipelineConfig",
    "ResourcesConfig",
    "RetryConfig",
    "RunConfig",
    "SFTConfig",
    "SamplingConfig",
    "ScheduleConfig",
    "SecretEnvConfig",
    "SharedVolumeConfig",
    "StorageConfig",
    "TinyVLMConfig",
    "TolerationConfig",
    "TrackingConfig",
    "TrainJobConfig",
    "WorldConfig",
    "apply_storage",
    "check_local_paths",
    "config_to_json",
    "config_to_yaml",
    "from_dict",
    "load_config",
    "load_yaml",
    "parse_config",
    "selection_benchmark",
    "to_dict",
]


@dataclass(frozen=True)
class RunConfig:
    """Where a run writes and how it is seeded."""

    output_dir: str = "runs/demo"
    seed: int = 0


@dataclass(frozen=True)
class Config:
    """The whole configuration, one field per stage."""

    run: RunConfig = field(default_factory=RunConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    labeling: LabelingConfig = field(default_factory=LabelingConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    povid: POVIDConfig = field(default_factory=POVIDConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    kubernetes: KubernetesConfig = field(default_factory=KubernetesConfig)
    kfp: KFPConfig = field(default_factory=KFPConfig)
    estimate: EstimateConfig = field(default_factory=EstimateConfig)

    def __post_init__(self) -> None:
        if self.pipeline.method == "rlaifv" and self.sampling.n < 2:
            raise ConfigError(
                f"sampling.n: RLAIF-V pairs two candidates of one prompt, so it needs at "
                f"least 2 per prompt, got {self.sampling.n}"
            )
        check_global_batch(self)
        check_selection(self)
        check_povid(self)


#: ``per_device_train_batch_size`` when ``dpo.trainer`` does not set it: the project's DPO
#: default, which ``mmrlaif.training.dpo.DEFAULT_DPO_ARGS`` takes from here.
DPO_PER_DEVICE_DEFAULT = 8


def dpo_gpus(cfg: Config) -> int:
    """GPUs (processes) the DPO task trains on: the TrainJob's, else the DPO task's limit."""
    k8s = cfg.kubernetes
    if k8s.trainjob is not None:
        return k8s.trainjob.num_nodes * k8s.trainjob.gpus_per_node
    return max(1, (k8s.train or k8s.gpu).accelerator_limit)


def check_global_batch(cfg: Config) -> None:
    """``dpo.global_batch_size`` against per device x accumulation x GPUs.

    Raises:
        ConfigError: Naming the key and the arithmetic, when they differ.
    """
    stated = cfg.dpo.global_batch_size
    if stated is None:
        return
    trainer = cfg.dpo.trainer
    per_device = int(trainer.get("per_device_train_batch_size", DPO_PER_DEVICE_DEFAULT))
    accumulation = int(trainer.get("gradient_accumulation_steps", 1))
    gpus = dpo_gpus(cfg)
    if per_device * accumulation * gpus != stated:
        raise ConfigError(
            f"dpo.global_batch_size: {stated} is not per_device_train_batch_size {per_device} x "
            f"gradient_accumulation_steps {accumulation} x {gpus} GPU(s) = "
            f"{per_device * accumulation * gpus}"
        )


#: A Hugging Face hub id (``org/name``): a real checkpoint, not a toy or a local folder.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def is_real_model(cfg: Config) -> bool:
    """Whether the policy is a real checkpoint named by its hub id (not the toy VLM, a twin,
    a registry reference or a folder): its selection and evaluation cannot be the toy world."""
    name = cfg.model.name_or_path
    return bool(name) and _HUB_ID.fullmatch(name) is not None


def check_selection(cfg: Config) -> None:
    """What decides the carried-forward policy, and what reports it, against the data there is.

    A benchmark selection figure needs that benchmark's data root (and MMHal its judge); the
    toy world's fixture layout exists for AMBER only; a real model must select and be
    evaluated on real benchmarks, not on the toy world.

    Raises:
        ConfigError: Naming the key.
    """
    metric = cfg.pipeline.select_metric
    bench = cfg.eval.benchmarks
    name = selection_benchmark(metric)
    if name is not None and not bench.data.get(name):
        raise ConfigError(
            f"eval.benchmarks.data.{name}: pipeline.select_metric {metric!r} selects on a "
            f"held-out slice of {name}; set its data root"
        )
    if name == "mmhal" and not bench.judge_endpoint:
        raise ConfigError(
            f"eval.benchmarks.judge_endpoint: pipeline.select_metric {metric!r} needs the "
            "MMHal-Bench judge"
        )
    for key, root in bench.data.items():
        if root == TOYWORLD_DATA and key != "amber":
            raise ConfigError(
                f"eval.benchmarks.data.{key}: {TOYWORLD_DATA!r} (the toy world in a benchmark's "
                "layout) exists for amber only"
            )
    if is_real_model(cfg):
        if metric in TOY_SELECT_METRICS:
            raise ConfigError(
                f"pipeline.select_metric: {metric!r} is measured on the toy world, where a real "
                f"model ({cfg.model.name_or_path}) names nothing; select on a real benchmark "
                "(e.g. object_halbench_object_f1, amber_object_f1) or 'latest'"
            )
        if not bench.run:
            raise ConfigError(
                "eval.benchmarks.run: a real model "
                f"({cfg.model.name_or_path}) is evaluated on the toy world only; name the "
                "benchmarks to report (pope, object_halbench, amber, mmhal)"
            )


def load_config(
    path: str | Path | Sequence[str | Path], overrides: Mapping[str, Any] | None = None
) -> Config:
    """Load a YAML preset, optionally with overlay files, into a :class:`Config`.

    Args:
        path: The YAML file, or several: each later file is merged over the earlier ones
            (sections merge key by key; a list or a value replaces), e.g. a preset and a
            site overlay with the cluster's settings. A file whose top level has
            ``extends: <file>`` is merged over that file (a path relative to it) first.
        overrides: Dotted keys to values applied last (``{"sft.max_length": 64}``).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: On unknown keys, wrong types or unreadable YAML, naming the key.
    """
    paths = [path] if isinstance(path, str | Path) else list(path)
    if not paths:
        raise ConfigError("no config file given")
    data: dict[str, Any] = {}
    for one in map(Path, paths):
        overlay(data, _read_preset(one, ()))
    for dotted, value in (overrides or {}).items():
        set_dotted(data, dotted, value)
    return from_dict(Config, data)


def _read_preset(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """One YAML file as a mapping; a top-level ``extends: <file>`` (relative to this file) is
    read first and this file merged over it (a tiny twin extends its real preset)."""
    try:
        loaded = load_yaml(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(loaded).__name__}")
    loaded = dict(loaded)
    parent = loaded.pop("extends", None)
    if parent is None:
        return loaded
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: extends must be a file name, got {type(parent).__name__}")
    base_path = (path.parent / parent).resolve()
    if base_path in chain or base_path == path.resolve():
        raise ConfigError(f"{path}: extends {parent} makes a cycle")
    data = _read_preset(base_path, (*chain, path.resolve()))
    overlay(data, loaded)
    return data


#: Config keys that name a model: a hub id, or a local folder that must exist.
MODEL_PATH_KEYS: tuple[str, ...] = (
    "model.name_or_path",
    "labeling.labeler_name_or_path",
    "labeling.llm_name_or_path",
    "labeling.llm_question_name_or_path",
    "povid.llm_name_or_path",
)


def check_local_paths(config: Config) -> None:
    """Fail early on a model path that points at a missing local folder.

    A value that starts like a path (``/``, ``./``, ``../``, ``~``) must be an existing folder;
    anything else is taken as a hub id (or ``s3://`` URI) and resolved when loaded. A name an
    endpoint serves (the ``openai`` labeler, ``llm_endpoint``) is not checked: it is the
    server's name for the model, not a folder here.

    Raises:
        ConfigError: Naming the key and the missing folder.
    """
    served = {
        "labeling.labeler_name_or_path": config.labeling.labeler == "openai",
        "labeling.llm_name_or_path": bool(config.labeling.llm_endpoint),
        "labeling.llm_question_name_or_path": bool(
            config.labeling.llm_question_endpoint or config.labeling.llm_endpoint
        ),
        "povid.llm_name_or_path": bool(config.povid.llm_endpoint),
    }
    bench = config.eval.benchmarks
    selecting = selection_benchmark(config.pipeline.select_metric)
    for name in dict.fromkeys([*bench.run, *([selecting] if selecting else [])]):
        root = bench.data[name]
        if root == TOYWORLD_DATA:
            continue
        if not root.startswith("s3://") and not Path(root).expanduser().is_dir():
            raise ConfigError(f"eval.benchmarks.data.{name}: no such folder {root!r}")
    for dotted in MODEL_PATH_KEYS:
        if served.get(dotted):
            continue
        section, key = dotted.split(".")
        value = getattr(getattr(config, section), key)
        if not value or not value.startswith(("/", "./", "../", "~")):
            continue
        if not Path(value).expanduser().is_dir():
            raise ConfigError(f"{dotted}: no such model folder {value!r}")


def parse_config(text: str, source: str = "config") -> Config:
    """Load a :class:`Config` from YAML text (how pipeline components receive it), and make its
    ``storage.*`` the S3 settings of this process (:func:`apply_storage`).

    Raises:
        ConfigError: On unreadable YAML, unknown keys or wrong types.
    """
    try:
        data = load_yaml(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot read {source}: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    cfg = from_dict(Config, data)
    apply_storage(cfg)
    return cfg


def apply_storage(cfg: Config) -> None:
    """Make ``cfg.storage`` the base of every S3 client this process builds (the
    ``MMRLAIF_S3_*`` variables still win): the prompt import, tables, models and benchmarks
    reach the same store as the TrainJob path."""

    st = cfg.storage
    s3.configure(
        st.endpoint_url,
        st.region,
        st.max_attempts,
        st.multipart_threshold_mb,
        st.multipart_chunk_mb,
    )


def config_to_yaml(config: Config) -> str:
    """The resolved configuration as YAML text (round-trips through :func:`parse_config`)."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def config_to_json(config: Config) -> str:
    """The resolved configuration as one line of JSON (valid YAML, read by :func:`parse_config`).

    This is the form the pipeline carries as its ``config`` parameter: KFP writes a parameter's
    default into a comment at the top of the compiled YAML, where a multi-line value would
    break the file.
    """
    return json.dumps(to_dict(config), separators=(",", ":"))
