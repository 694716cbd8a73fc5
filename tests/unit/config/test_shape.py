"""A compiled pipeline's shape: a runtime config of another shape is refused, naming the keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mmrlaif.config import ConfigError, config_to_json, load_config
from mmrlaif.config.shape import pipeline_shape, shape_differences, shape_text

PRESET = Path(__file__).resolve().parents[3] / "configs" / "tiny_cpu.yaml"


def test_shape_differences_name_the_keys_that_differ() -> None:
    cfg = load_config(PRESET)
    same = load_config(PRESET, {"sampling.n": 4, "model.name_or_path": "/some/folder"})
    assert shape_differences(shape_text(cfg), same) == []  # values a task reads: free
    other = load_config(
        PRESET,
        {
            "pipeline.iterations": 5,
            "kubernetes.gpu.accelerator_limit": 2,
            "data.prompts_prefix": "s3://b/p",
        },
    )
    assert shape_differences(shape_text(cfg), other) == [
        "data.align_prompts / data.prompts_prefix (set): false -> true",
        "kubernetes.gpu.accelerator_limit: 0 -> 2",
        f"pipeline.iterations: {cfg.pipeline.iterations} -> 5",
    ]
    assert "kubernetes.gpu.tolerations" in pipeline_shape(cfg)  # every leaf of the section


def test_the_first_task_refuses_a_config_of_another_shape(tmp_path: Path) -> None:
    from mmrlaif.steps.world import world_step

    cfg = load_config(PRESET, {"run.output_dir": str(tmp_path)})
    compiled = shape_text(cfg)
    runtime = dataclasses.replace(cfg, pipeline=dataclasses.replace(cfg.pipeline, shards=3))
    with pytest.raises(ConfigError, match=r"pipeline.shards: 1 -> 3; compile the pipeline"):
        world_step(runtime, tmp_path / "world", compiled)
    assert not (tmp_path / "world").exists()  # refused before anything was written


def test_submit_refuses_a_config_parameter_of_another_shape() -> None:
    from mmrlaif.pipelines.run_arguments import run_arguments

    cfg = load_config(PRESET)
    declared = {"config": {"parameterType": "STRING"}, "run_date": {"parameterType": "STRING"}}
    other = load_config(PRESET, {"pipeline.method": "povid"})
    with pytest.raises(ValueError, match=r"--param config= changes .*pipeline.method"):
        run_arguments(cfg, declared, {"config": config_to_json(other)}, scheduled=False)
    fine = load_config(PRESET, {"sampling.temperature": 0.9})
    args = run_arguments(cfg, declared, {"config": config_to_json(fine)}, scheduled=False)
    assert args["config"] == config_to_json(fine)
