"""Trainer settings are checked when the config is loaded, before any task runs."""

from pathlib import Path

import pytest

from mmrlaif.cli import main
from mmrlaif.config import ConfigError, DPOConfig, load_config
from mmrlaif.training.dpo import dpo_arguments
from mmrlaif.training.validate import check_trainer_args

PRESETS = sorted(str(p) for p in Path("configs").rglob("*.yaml") if "overlays" not in p.parts)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_passes_the_load_time_check(preset):
    check_trainer_args(load_config(preset))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "dpo.trainer.num_train_epoch",
            2,
            r"dpo.trainer.num_train_epoch: not an option of "
            r"DPOConfig \(did you mean num_train_epochs",
        ),
        (
            "dpo.trainer.learning_rate",
            "fast",
            r"dpo.trainer.learning_rate: expected float, got "
            r"str 'fast'",
        ),
        (
            "sft.trainer.warmup_ratio",
            0.1,
            r"sft.trainer.warmup_ratio: not an option of "
            r"TrainingArguments \(did you mean warmup_steps",
        ),
        ("dpo.trainer.lr_scheduler_type", "wobbly", r"dpo.trainer: .*wobbly"),
        ("dpo.deepspeed", "configs/deepspeed/zero9.json", r"no such DeepSpeed config file"),
    ],
)
def test_bad_trainer_settings_are_named(key, value, message):
    cfg = load_config("configs/tiny_cpu.yaml", {key: value})
    with pytest.raises(ConfigError, match=message):
        check_trainer_args(cfg)


def test_gpu_presets_check_on_a_cpu_machine():
    # bf16 and DeepSpeed are the GPU machine's business; the keys and values are checked here
    cfg = load_config("configs/qwen25vl_7b/rlaifv.yaml")
    assert cfg.dpo.trainer["bf16"] is True and cfg.dpo.deepspeed
    check_trainer_args(cfg)


@pytest.mark.parametrize("key", ["activation_checkpointing", "gradient_checkpointing"])
def test_checkpointing_is_what_the_preset_says(key, tmp_path):
    on = dpo_arguments(DPOConfig(trainer={key: True}), tmp_path, 0)
    assert on.activation_checkpointing is True
    off = dpo_arguments(DPOConfig(trainer={key: False}), tmp_path, 0)
    assert off.activation_checkpointing is False
    # unset: TRL's own default (on), never a project default that overrides the preset
    assert dpo_arguments(DPOConfig(), tmp_path, 0).activation_checkpointing is True
    tiny = load_config("configs/tiny_cpu.yaml")
    assert dpo_arguments(tiny.dpo, tmp_path, 0).activation_checkpointing is False


@pytest.mark.parametrize("command", ["compile", "run"])
def test_cli_stops_before_any_task(command, tmp_path, capsys):
    code = main(
        [
            command,
            "--config",
            "configs/tiny_cpu.yaml",
            "--set",
            f"run.output_dir={tmp_path}",
            "--set",
            "dpo.trainer.num_train_epoch=2",
        ]
    )
    assert code == 2
    assert "dpo.trainer.num_train_epoch: not an option" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing ran, nothing written
