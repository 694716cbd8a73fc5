"""Intermediate checkpoints of a DPO run kept as loadable models, for selection.

RLAIF-V carries forward the best of its quarter-epoch checkpoints, not the last one. With
``pipeline.select_every`` the DPO run saves its model every so many optimizer steps under
``<run>/candidates/step-<n>/`` (a plain ``save_pretrained`` folder: LoRA adapters merged, ZeRO-3
shards gathered), and the evaluation scores them with the final model
(:func:`mmrlaif.steps.evaluate.evaluate_step`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from transformers import ProcessorMixin, Trainer, TrainerCallback

from mmrlaif.models.load import save_model

logger = logging.getLogger(__name__)


def candidate_interval(every: float, max_steps: int) -> int:
    """Optimizer steps between two candidates: ``every`` itself when it is a whole number of
    steps, else that fraction of the run's ``max_steps`` (at least 1)."""
    if every >= 1:
        return int(every)
    return max(1, round(every * max_steps))


class CandidateSaver(TrainerCallback):
    """Save the model every :func:`candidate_interval` steps, except at the run's last step
    (the final model is saved as the run's ``model/`` anyway).

    Args:
        every: ``pipeline.select_every``.
        out_dir: The run's ``candidates/`` folder.
        processor: Saved beside each model.
        gather: Save through the trainer (DeepSpeed ZeRO-3 without LoRA: only the trainer can
            gather the partitioned weights).
    """

    def __init__(
        self, every: float, out_dir: str | Path, processor: ProcessorMixin, gather: bool = False
    ) -> None:
        self.every = every
        self.out_dir = Path(out_dir)
        self.processor = processor
        self.gather = gather
        self.trainer: Any = None  # set once the trainer exists
        self.saved: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if step >= state.max_steps or step % candidate_interval(self.every, state.max_steps):
            return control
        if self.trainer is None:
            raise RuntimeError("CandidateSaver.trainer must be set before training")
        save_candidate(self.trainer, self.processor, self.out_dir / f"step-{step}", self.gather)
        self.saved.append(step)
        logger.info("kept candidate step-%d for selection", step)
        return control


def save_candidate(trainer: Any, processor: ProcessorMixin, path: Path, gather: bool) -> Path:
    """Save the trainer's current model as a loadable folder, atomically.

    LoRA adapters are merged into a copy of the weights on the way out and the live model is
    left as it was (adapters unmerged), so training goes on unchanged.
    """
    if gather:
        return save_atomically(trainer, processor, path)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if not hasattr(model, "merge_adapter"):
        return save_atomically(model, processor, path)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.merge_adapter()
    try:
        base = model.get_base_model()
        state = {  # the names the plain model has: no adapters, no wrappers
            _plain_name(key): value
            for key, value in base.state_dict().items()
            if "lora_" not in key and ".original_module." not in key
        }
        base.save_pretrained(tmp, state_dict=state)
    finally:
        model.unmerge_adapter()
    processor.save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def _plain_name(key: str) -> str:
    """A PEFT-wrapped parameter's name in the plain model (``base_layer``: a LoRA layer's
    weights; ``modules_to_save.default``: a module trained in full beside the adapters)."""
    return key.replace(".base_layer", "").replace(".modules_to_save.default", "")


def save_atomically(source, processor: ProcessorMixin, model_dir: Path) -> Path:
    """Save a model (or, under DeepSpeed, through its trainer) to a temp folder, then rename.

    With several processes only the main one writes; the others wait for it.
    """

    tmp = model_dir.with_name(f".{model_dir.name}.tmp")
    if isinstance(source, Trainer):
        if source.is_world_process_zero():
            shutil.rmtree(tmp, ignore_errors=True)
        source.save_model(str(tmp))  # collective under ZeRO-3: every rank calls it
        if not source.is_world_process_zero():
            source.accelerator.wait_for_everyone()
            return model_dir
        processor.save_pretrained(tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
        save_model(source, processor, tmp)
    shutil.rmtree(model_dir, ignore_errors=True)
    tmp.rename(model_dir)
    if isinstance(source, Trainer):
        source.accelerator.wait_for_everyone()
    return model_dir
