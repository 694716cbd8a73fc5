"""The DPO section: one iteration's preference training and its LoRA adapters (``dpo``,
``dpo.lora``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mmrlaif.config.strict import ConfigError
from mmrlaif.families import DEFAULT_LORA_MODULES

#: LoRA targets: the attention and MLP projections of a decoder layer; they are looked up inside
#: the language model only (a plain list would also hit the vision encoder's projections).
LANGUAGE_MODEL_LORA_TARGETS: tuple[str, ...] = DEFAULT_LORA_MODULES


@dataclass(frozen=True)
class LoRAConfig:
    """LoRA adapters for DPO (peft).

    Attributes:
        r: Rank of the adapters.
        alpha: Scaling numerator (``lora_alpha``).
        dropout: Dropout on the adapter input.
        target_modules: Names of the language model's modules that get adapters (its
            attention and MLP projections by default); resolved inside the family's language
            model, so the vision encoder never gets one.
        target_regex: A PEFT ``target_modules`` regex over full module names that replaces
            the family's resolution (``null``: resolved from ``target_modules``).
        merge: Merge the adapters into the weights when saving, so the next stage loads a plain
            model; ``false`` saves the adapter alone (with the base model's path in its config).
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = LANGUAGE_MODEL_LORA_TARGETS
    target_regex: str | None = None
    merge: bool = True


@dataclass(frozen=True)
class DPOConfig:
    """DPO training of one iteration (TRL ``DPOTrainer``).

    Attributes:
        trainer: Keyword arguments for ``trl.DPOConfig``, passed through as is (``beta``,
            ``loss_type``, ``loss_weights``, ``learning_rate``, ``num_train_epochs``...); the
            project's defaults fill what is not given. TRL's ``sft`` loss term is the mean
            token NLL of the chosen answer, RLAIF-V's SFT term its summed NLL: a weight ``w``
            here is RLAIF-V's ``w / |y|`` (``|y|`` the chosen answer's tokens).
        max_length: Token budget per prompt + answer; longer pairs are an error, never cut.
        lora: LoRA adapters instead of full fine-tuning (``null``: full fine-tuning).
        freeze_vision_tower: Train the projector and language model only (full fine-tuning).
        precompute_ref: Compute the reference log-probs once before training and free the
            reference model; ``false`` keeps TRL's live reference model (for comparison).
            With POVID's online noise rejection the chosen and fixed rejected answers' are
            computed once (the first time each example is seen) and kept, while the noise
            rejection's, new every epoch, are computed at each step: the reference model
            then stays resident (with LoRA it is the policy with its adapters disabled).
        deepspeed: Path of a DeepSpeed JSON config (``configs/deepspeed/zero2.json``), GPU runs.
        keep_checkpoints: Keep the intermediate checkpoints after a successful run (they are
            what a killed run resumes from; by default removed once the model is saved).
        global_batch_size: The pairs per optimizer step the preset intends (``null``: not
            stated). Checked when the config loads against ``per_device_train_batch_size`` x
            ``gradient_accumulation_steps`` x the DPO task's GPUs (``kubernetes.trainjob``
            nodes x GPUs per node, else ``kubernetes.train`` or ``kubernetes.gpu``
            accelerators): a mismatch is an error naming the key.
        projector_learning_rate: Train the vision-language projector (the family's projector
            parts, :mod:`mmrlaif.models.families`) at this learning rate, in its own
            optimizer group (same schedule, warmup and weight decay as the rest), while
            ``trainer.learning_rate`` applies to everything else; POVID trains LLaVA's projector
            at 2e-5 beside LoRA at 1e-7. With LoRA the projector modules are trained in full
            (PEFT ``modules_to_save``; a projector part that is a bare parameter, such as
            LLaVA-NeXT's ``image_newline``, stays frozen); ``null``: one learning rate (with
            LoRA the projector stays frozen).
    """

    trainer: Mapping[str, Any] = field(default_factory=dict)
    global_batch_size: int | None = None
    projector_learning_rate: float | None = None
    max_length: int = 160
    lora: LoRAConfig | None = None
    freeze_vision_tower: bool = True
    precompute_ref: bool = True
    deepspeed: str | None = None
    keep_checkpoints: bool = False

    def __post_init__(self) -> None:
        if self.projector_learning_rate is not None and not self.projector_learning_rate > 0:
            raise ConfigError(
                f"projector_learning_rate: must be > 0, got {self.projector_learning_rate}"
            )
