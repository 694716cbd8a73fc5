"""What a run of the pipeline is created from: the compiled package, and the arguments it is
given (used by :mod:`mmrlaif.pipelines.client`).

The package is the one given, or the pipeline compiled from the config into a temporary file.
The arguments are the config (one line of JSON), ``run_date`` for a recurring run (the
ScheduledWorkflow controller's macro), then the ``--param`` values, checked against the
parameters the package declares and converted to their declared types.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from mmrlaif.config import Config, config_to_json, parse_config
from mmrlaif.config.shape import shape_differences, shape_text
from mmrlaif.pipelines import build

#: Argo ScheduledWorkflow macro: the date a scheduled run was scheduled for (Go time layout).
RUN_DATE_MACRO = "[[ScheduledTime.2006-01-02]]"


@contextlib.contextmanager
def compiled_package(cfg: Config, package: Path | None) -> Iterator[Path]:
    """``package``, or ``cfg``'s pipeline compiled into a temporary file."""
    if package is not None:
        package = Path(package)
        if not package.is_file():
            raise FileNotFoundError(f"no pipeline package {package}")
        yield package
        return
    with tempfile.TemporaryDirectory(prefix="mmrlaif-kfp-") as tmp:
        yield build.compile_pipeline(cfg, Path(tmp) / "pipeline.yaml")


def read_package(path: Path) -> tuple[str, dict[str, Any]]:
    """The pipeline's name and its declared input parameters (name -> spec)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~20x faster
    spec = next(yaml.load_all(path.read_text(), Loader=loader))
    spec = spec.get("pipeline_spec", spec)  # the JSON form nests it
    params = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    return spec["pipelineInfo"]["name"], dict(params)


def run_arguments(
    cfg: Config, declared: Mapping[str, Any], given: Mapping[str, Any], *, scheduled: bool
) -> dict[str, Any]:
    """The run's arguments: the config, ``run_date`` for a schedule, then ``given``."""
    args: dict[str, Any] = {}
    if "config" in declared:
        args["config"] = config_to_json(cfg)
    if scheduled and "run_date" in declared:
        args["run_date"] = RUN_DATE_MACRO
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ValueError(
            f"unknown pipeline parameter(s) {', '.join(unknown)}; "
            f"the pipeline takes: {', '.join(sorted(declared)) or 'none'}"
        )
    if isinstance(given.get("config"), str):  # a config of another shape: another pipeline
        differences = shape_differences(shape_text(cfg), parse_config(given["config"]))
        if differences:
            raise ValueError(
                "--param config= changes what the pipeline is compiled from: "
                f"{'; '.join(differences)}; set these in the config the pipeline is "
                "compiled from instead"
            )
    for key, value in given.items():
        args[key] = _typed(key, value, declared[key].get("parameterType", "STRING"))
    return args


def _typed(key: str, value: Any, kind: str) -> Any:
    """A string ``--param`` value converted to the parameter's declared type."""
    if not isinstance(value, str) or kind == "STRING":
        return value
    try:
        if kind == "NUMBER_INTEGER":
            return int(value)
        if kind == "NUMBER_DOUBLE":
            return float(value)
        if kind == "BOOLEAN":
            if value.lower() not in ("true", "false"):
                raise ValueError(value)
            return value.lower() == "true"
        return json.loads(value)  # LIST, STRUCT
    except ValueError as exc:
        raise ValueError(f"pipeline parameter {key}: expected {kind}, got {value!r}") from exc
