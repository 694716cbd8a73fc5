"""Supervised fine-tuning of the base policy with ``transformers.Trainer``."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from transformers import PreTrainedModel, ProcessorMixin, Trainer, TrainingArguments

from mmrlaif.config import ModelConfig, SFTConfig
from mmrlaif.io import read_rows
from mmrlaif.models.families import family_of, freeze_vision_encoder
from mmrlaif.models.load import load_vlm, save_model
from mmrlaif.toyworld.tiny import build_tiny_vlm
from mmrlaif.training.data import Example, SupervisedCollator, examples_from_rows

logger = logging.getLogger(__name__)

#: Defaults for the toy world on CPU; every key can be overridden by ``sft.trainer``.
DEFAULT_TRAINER_ARGS: dict[str, Any] = {
    "num_train_epochs": 4,
    "per_device_train_batch_size": 32,
    "learning_rate": 1e-3,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,
    "weight_decay": 0.0,
    "logging_steps": 10,
    "save_strategy": "no",
    "report_to": "none",
    "dataloader_num_workers": 0,
    "dataloader_pin_memory": False,
    "disable_tqdm": False,
}


@dataclass(frozen=True)
class SFTResult:
    """Outcome of an SFT run.

    Attributes:
        model_dir: Where the fine-tuned model and processor were saved.
        loss_curve: Training loss at each logging step.
        n_examples: Examples trained on.
        skips: Rows skipped, by reason.
        seconds: Wall time of training.
    """

    model_dir: Path
    loss_curve: list[float]
    n_examples: int
    skips: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class _ExampleDataset(Dataset):
    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]


def training_kwargs(cfg: SFTConfig, output_dir: Path, seed: int) -> dict[str, Any]:
    """The defaults merged with ``cfg.trainer``: the keyword arguments of ``TrainingArguments``."""
    args = DEFAULT_TRAINER_ARGS | {"seed": seed, "data_seed": seed} | dict(cfg.trainer)
    return args | {"output_dir": str(output_dir), "remove_unused_columns": False}


def training_arguments(cfg: SFTConfig, output_dir: Path, seed: int) -> TrainingArguments:
    """Merge the defaults with ``cfg.trainer`` into ``TrainingArguments``.

    Raises:
        ValueError: Naming ``sft.trainer`` when a key is not a ``TrainingArguments`` field.
    """
    try:
        return TrainingArguments(**training_kwargs(cfg, output_dir, seed))
    except TypeError as exc:
        raise ValueError(f"sft.trainer: {exc}") from exc


def train_sft(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    rows: Sequence[Mapping[str, Any]],
    cfg: SFTConfig,
    output_dir: str | Path,
    seed: int,
    family: str | None = None,
) -> SFTResult:
    """Fine-tune ``model`` on (image, question, answer) rows; loss on answers only.

    Args:
        model: The model to train (modified in place).
        processor: Its processor.
        rows: Rows with ``example_id``, ``image``, ``question``, ``answer``.
        cfg: Trainer pass-through arguments and the token budget.
        output_dir: The run folder; the model is saved under ``model/`` inside it.
        seed: Seed of the data order and dropout.
        family: The model family, when not detected from the model (``model.family``).

    Returns:
        Where the model went, the loss curve and the skip counts.
    """
    output_dir = Path(output_dir)
    examples, skips = examples_from_rows(rows)
    if not examples:
        raise ValueError(f"no SFT examples left after skips {dict(skips)}")
    logger.info("SFT on %d examples (skipped: %s)", len(examples), dict(skips) or "none")
    if cfg.freeze_vision_tower:
        n_frozen = freeze_vision_encoder(model, family_of(model, family))
        logger.info("vision encoder frozen (%d parameters)", n_frozen)
    args = training_arguments(cfg, output_dir / "checkpoints", seed)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_ExampleDataset(examples),
        data_collator=SupervisedCollator(processor, cfg.max_length),
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    model.eval()
    model_dir = output_dir / "model"
    tmp = output_dir / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, processor, tmp)
    shutil.rmtree(model_dir, ignore_errors=True)
    tmp.rename(model_dir)
    return SFTResult(model_dir, losses, len(examples), dict(skips), seconds)


def sft_stage(
    model_cfg: ModelConfig,
    sft_cfg: SFTConfig,
    image_size: int,
    sft_table: str | Path,
    output_dir: str | Path,
    seed: int,
) -> SFTResult:
    """The SFT stage end to end: build or load the model, read the table, train, save.

    Args:
        model_cfg: ``name_or_path`` to start from, or ``None`` to build the tiny VLM.
        sft_cfg: Trainer arguments and token budget.
        image_size: Image side, for building the tiny VLM.
        sft_table: Parquet table of SFT rows.
        output_dir: Run folder (``model/`` is written inside).
        seed: Seed of training.
    """
    if model_cfg.name_or_path is None:
        model, processor = build_tiny_vlm(model_cfg.tiny, image_size, model_cfg.seed)
    else:
        model, processor = load_vlm(
            model_cfg.name_or_path,
            model_cfg.dtype,
            model_cfg.trust_remote_code,
            family=model_cfg.family,
        )
    return train_sft(
        model, processor, read_rows(sft_table), sft_cfg, output_dir, seed, model_cfg.family
    )
