"""The ``prepare-world`` component's step: the world's tables, with the alignment prompts
optionally taken from a dataset (``data.align_prompts``) or from the new partitions of a
date-partitioned prefix (``data.prompts_prefix``, continual retraining) instead of the toy
world."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from mmrlaif.artifacts import IMPORT_REPORT
from mmrlaif.config import Config, ConfigError
from mmrlaif.config.shape import shape_differences
from mmrlaif.io import write_json
from mmrlaif.io.prompts import import_prompts
from mmrlaif.toyworld.generate import WorldPaths, build_world

logger = logging.getLogger(__name__)


def world_step(cfg: Config, out_dir: str | Path, shape: str = "") -> WorldPaths:
    """Write the world under ``out_dir``; import ``data.align_prompts`` as the align split.

    The eval and validation splits stay the toy world's (with their ground truth), so the
    pipeline's evaluation and checkpoint selection keep working whatever the prompts are.

    Args:
        cfg: The run's configuration (the ``config`` parameter).
        out_dir: The world folder.
        shape: The compiled pipeline's shape (:func:`mmrlaif.config.shape.shape_text`).

    Raises:
        ConfigError: ``cfg`` has another shape than the compiled pipeline, naming the keys.
    """
    differences = shape_differences(shape, cfg) if shape else []
    if differences:
        raise ConfigError(
            "the config this run was given does not fit the compiled pipeline (its shape is "
            f"fixed at compile time): {'; '.join(differences)}; compile the pipeline from "
            "this config instead"
        )
    paths = build_world(cfg.world, out_dir)
    if cfg.data.align_prompts:
        stats = import_prompts(cfg.data, paths.prompts("align"))
        write_json(asdict(stats), Path(out_dir) / IMPORT_REPORT)
    elif cfg.data.prompts_prefix:
        # lazy: MLflow comes with it, needed by continual runs only
        from mmrlaif.continual.partitions import REPORT, select_prompts

        select_prompts(cfg, paths.prompts("align"), Path(out_dir) / REPORT)
    return paths
