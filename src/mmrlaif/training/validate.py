"""Trainer settings checked when the config is loaded, before any task runs.

``sft.trainer`` and ``dpo.trainer`` are passed through to ``transformers.TrainingArguments`` and
``trl.DPOConfig``. A typo or a wrong value there used to surface only inside the DPO task,
after sampling and labeling had run; :func:`check_trainer_args` builds both objects the way the
stages do (on a CPU's device settings, so a GPU preset checks on a laptop) and names the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmrlaif.config import Config, ConfigError

#: Device settings replaced for the check only (the stages pick them on the real machine).
_DEVICE_NEUTRAL = {"use_cpu": True, "bf16": False, "fp16": False}


def check_trainer_args(cfg: Config) -> None:
    """Build ``TrainingArguments`` (``sft.trainer``) and ``trl.DPOConfig`` (``dpo.trainer``).

    Raises:
        ConfigError: Naming the dotted key (``dpo.trainer.num_train_epoch``) of an unknown
            option (with the closest known names), a value of the wrong type, or a value the
            class itself refuses; or a ``dpo.deepspeed`` file that does not exist.
    """
    # lazy: transformers and trl take seconds to import; compile and submit need them only here
    from transformers import TrainingArguments
    from trl import DPOConfig as TRLDPOConfig

    # lazy: transformers and trl take seconds to import; compile and submit need them only here
    from mmrlaif.training.dpo import dpo_kwargs
    from mmrlaif.training.sft import training_kwargs

    _check_fields("sft.trainer", cfg.sft.trainer, TrainingArguments)
    _check_fields("dpo.trainer", cfg.dpo.trainer, TRLDPOConfig)
    if cfg.dpo.deepspeed and not Path(cfg.dpo.deepspeed).is_file():
        raise ConfigError(f"dpo.deepspeed: no such DeepSpeed config file {cfg.dpo.deepspeed!r}")
    with tempfile.TemporaryDirectory() as tmp:
        for section, cls, kwargs in (
            ("sft.trainer", TrainingArguments, training_kwargs(cfg.sft, Path(tmp), 0)),
            ("dpo.trainer", TRLDPOConfig, dpo_kwargs(cfg.dpo, Path(tmp), 0)),
        ):
            try:
                cls(**(kwargs | _DEVICE_NEUTRAL | {"deepspeed": None}))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{section}: {exc}") from exc


def _check_fields(section: str, values: Mapping[str, Any], cls: type) -> None:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"{section}.{key}: not an option of {cls.__name__}{hint}")
        default = fields[key].default
        if default is dataclasses.MISSING or default is None or value is None:
            continue
        expected = type(default)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        # ints stay open to floats: ``warmup_steps`` takes a ratio below 1
        ok = isinstance(value, bool) if expected is bool else number
        if expected in (bool, int, float) and not ok:
            raise ConfigError(
                f"{section}.{key}: expected {expected.__name__}, got "
                f"{type(value).__name__} {value!r}"
            )
