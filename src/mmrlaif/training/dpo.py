"""DPO training of one iteration on the pairs table, through TRL's ``DPOTrainer``."""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
from datasets import Dataset, load_dataset
from peft import LoraConfig
from torch.nn import Module
from transformers import PreTrainedModel, ProcessorMixin, TrainerCallback
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from mmrlaif import artifacts
from mmrlaif.config import (
    DPO_PER_DEVICE_DEFAULT,
    DPOConfig,
    ModelConfig,
)
from mmrlaif.io import copy_tree, write_json
from mmrlaif.models.families import (
    family_of,
    freeze_vision_encoder,
    lora_target_regex,
    submodule,
)
from mmrlaif.models.load import load_vlm
from mmrlaif.pairs.table import REFERENCE_NOISE
from mmrlaif.training.candidates import CandidateSaver, save_atomically
from mmrlaif.training.data import PreferenceCollator
from mmrlaif.training.povid_data import (
    POVIDCollator,
    check_example_lengths,
    group_dataset,
    needs_grouping,
    noise_spec,
)

logger = logging.getLogger(__name__)

#: The method's defaults (RLAIF-V: beta 0.1, cosine, warmup 0.05, 4 epochs, summed log-probs;
#: lr 5e-7 for full fine-tuning); every key can be overridden by ``dpo.trainer``.
DEFAULT_DPO_ARGS: dict[str, Any] = {
    "beta": 0.1,
    "loss_type": ["sigmoid"],
    "learning_rate": 5e-7,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,
    "num_train_epochs": 4,
    "per_device_train_batch_size": DPO_PER_DEVICE_DEFAULT,
    "logging_steps": 1,
    "save_strategy": "epoch",
    "save_total_limit": 2,
    "report_to": "none",
    "disable_tqdm": True,
    "dataloader_num_workers": 0,
    "dataloader_pin_memory": False,
}


@dataclass(frozen=True)
class DPOResult:
    """Outcome of one DPO run.

    Attributes:
        model_dir: The trained policy (or, when skipped, a copy of the starting policy).
        n_pairs: Pairs trained on.
        sources: Pairs by source (``rlaifv``, ``povid_text``...).
        history: TRL's log history: per-step loss, reward margins and accuracies.
        seconds: Wall time of training (precompute included).
        skipped_reason: Why no training happened (``None`` when it did).
        resumed_from: The checkpoint training resumed from, if any.
    """

    model_dir: Path
    n_pairs: int
    sources: dict[str, int] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    skipped_reason: str | None = None
    resumed_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        out = asdict(self)
        out["model_dir"] = str(self.model_dir)
        return out


def dpo_kwargs(cfg: DPOConfig, output_dir: Path, seed: int) -> dict[str, Any]:
    """The defaults, this machine's device and ``cfg.trainer`` merged: ``trl.DPOConfig``'s
    keyword arguments."""
    cuda = torch.cuda.is_available()
    device = {"use_cpu": not cuda, "bf16": cuda and torch.cuda.is_bf16_supported()}
    args = DEFAULT_DPO_ARGS | device | {"seed": seed, "data_seed": seed} | dict(cfg.trainer)
    return args | {
        "output_dir": str(output_dir),
        # lengths are checked up front (an over-long pair is an error); TRL must not cut
        "max_length": None,
        "precompute_ref_log_probs": False,
        "deepspeed": cfg.deepspeed,
    }


def dpo_arguments(cfg: DPOConfig, output_dir: Path, seed: int):
    """Merge the defaults, the device and ``cfg.trainer`` into ``trl.DPOConfig``.

    Raises:
        ValueError: Naming ``dpo.trainer`` when TRL rejects a key or value.
    """
    # lazy: trl takes seconds to import; building the trainer arguments' dict needs none of it
    from trl import DPOConfig as TRLDPOConfig

    try:
        return TRLDPOConfig(**dpo_kwargs(cfg, output_dir, seed))
    except ImportError as exc:
        if cfg.deepspeed:
            raise ImportError(
                f"dpo.deepspeed={cfg.deepspeed!r} needs DeepSpeed: pip install 'mmrlaif[deepspeed]'"
                f" ({exc})"
            ) from exc
        raise
    except (TypeError, ValueError) as exc:
        raise ValueError(f"dpo.trainer: {exc}") from exc


def check_lengths(
    dataset: Dataset, processor: ProcessorMixin, max_length: int, batch_size: int = 64
) -> int:
    """Encode every pair as training will and fail on one longer than ``max_length``.

    Returns:
        The longest prompt + answer, in tokens.

    Raises:
        ValueError: Naming the pair (``prompt_id`` and which answer) that is too long.
    """
    collator = PreferenceCollator(processor)
    longest = 0
    for start in range(0, len(dataset), batch_size):
        rows = [dict(dataset[i]) for i in range(start, min(start + batch_size, len(dataset)))]
        lengths = collator(rows)["attention_mask"].sum(dim=1).tolist()
        n = len(rows)
        for i, row in enumerate(rows):
            for which, length in (("chosen", lengths[i]), ("rejected", lengths[i + n])):
                longest = max(longest, int(length))
                if length > max_length:
                    pid = row.get("prompt_id", start + i)
                    raise ValueError(
                        f"pair {pid}: prompt + {which} answer is {int(length)} tokens, over "
                        f"dpo.max_length={max_length} (raise it; pairs are never truncated)"
                    )
    return longest


def lora_config(cfg: DPOConfig, model: PreTrainedModel, family: str | None = None):
    """PEFT's ``LoraConfig`` with adapters on the language model's projections only (resolved
    for the model's family; ``dpo.lora.target_regex`` overrides)."""

    assert cfg.lora is not None
    resolved = family_of(model, family)
    target = cfg.lora.target_regex or lora_target_regex(model, resolved, cfg.lora.target_modules)
    save = None
    if cfg.projector_learning_rate is not None:  # the projector trains in full beside LoRA
        save = [path for path in resolved.projector if isinstance(submodule(model, path), Module)]
        skipped = sorted(set(resolved.projector) - set(save))
        if skipped:
            logger.info("projector parameters not trained with LoRA: %s", ", ".join(skipped))
    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=target,
        modules_to_save=save,
        task_type="CAUSAL_LM",
    )


def train_dpo(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    dataset: Dataset,
    cfg: DPOConfig,
    output_dir: str | Path,
    seed: int,
    resume: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
    checkpoint_dir: str | Path | None = None,
    family: str | None = None,
) -> DPOResult:
    """Train ``model`` with DPO on a pairs dataset and save it under ``output_dir/model``.

    Args:
        model: The iteration's starting policy, loaded from a saved folder (TRL's reference
            pass reads ``model.config._name_or_path``).
        processor: Its processor.
        dataset: A ``datasets.Dataset`` in the pairs-table layout.
        cfg: Trainer pass-through arguments, LoRA, token budget, reference handling.
        output_dir: Run folder: ``checkpoints/`` and ``model/`` are written inside.
        seed: Seed of the data order.
        resume: Resume from the last checkpoint in the checkpoint folder if there is one.
        callbacks: Extra ``TrainerCallback`` s.
        checkpoint_dir: Where checkpoints go (default ``output_dir/checkpoints``); a shared
            volume lets a retried task resume.
        family: The model family, when not detected from the model (``model.family``).

    Returns:
        Where the model went, the step history and the pair counts.
    """
    # lazy: trl takes seconds to import; building the trainer arguments' dict needs none of it
    from mmrlaif.training.reference import LiveRefDPOTrainer, PrecomputedRefDPOTrainer

    output_dir = Path(output_dir)
    povid = _povid_trainer_kwargs(dataset, processor, cfg, seed)
    if povid is None:
        check_lengths(dataset, processor, cfg.max_length)
    if cfg.lora is None and cfg.freeze_vision_tower:
        n_frozen = freeze_vision_encoder(model, family_of(model, family))
        logger.info("vision encoder frozen (%d parameters)", n_frozen)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir else output_dir / "checkpoints"
    args = dpo_arguments(cfg, ckpt_dir, seed)
    last = last_complete_checkpoint(ckpt_dir) if resume else None
    trainer_cls = PrecomputedRefDPOTrainer if cfg.precompute_ref else LiveRefDPOTrainer
    data = {
        "train_dataset": dataset,
        "data_collator": PreferenceCollator(processor, cfg.max_length),
    }
    if povid is not None:  # grouped POVID examples, online noise rejection
        # lazy: trl takes seconds to import; building the trainer arguments' dict needs none of it
        from mmrlaif.training.povid import POVIDDPOTrainer

        trainer_cls, data = POVIDDPOTrainer, povid
    start = time.perf_counter()
    trainer = trainer_cls(
        model=model,
        args=args,
        processing_class=processor,
        peft_config=lora_config(cfg, model, family) if cfg.lora is not None else None,
        callbacks=list(callbacks),
        **data,
    )
    trainer.set_projector_learning_rate(cfg.projector_learning_rate, family_of(model, family))
    for callback in callbacks:  # callbacks that save through the trainer need it
        if hasattr(callback, "trainer"):
            callback.trainer = trainer
    if last:
        logger.info("resuming DPO from %s", last)
    trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - start
    if cfg.deepspeed and cfg.lora is None:
        # ZeRO-3 partitions the weights: only the trainer gathers them for saving
        model_dir = save_atomically(trainer, processor, output_dir / "model")
    else:
        trained = trainer.model
        if cfg.lora is not None and cfg.lora.merge:
            trained = trained.merge_and_unload()
        trained.eval()
        model_dir = save_atomically(trained, processor, output_dir / "model")
    sources = Counter(dataset["source"]) if "source" in dataset.column_names else Counter()
    history = [dict(h) for h in trainer.state.log_history]
    return DPOResult(model_dir, len(dataset), dict(sources), history, seconds, None, last)


def _povid_trainer_kwargs(dataset: Dataset, processor: ProcessorMixin, cfg: DPOConfig, seed: int):
    """Dataset, collator and noise settings of :class:`~mmrlaif.training.povid.POVIDDPOTrainer`
    when the pairs need it (an online noise rejection, or a prompt with several POVID pairs,
    whose loss is weighed per example); ``None`` otherwise (TRL's trainer on the rows).

    Raises:
        ValueError: On an answer over ``dpo.max_length``, as :func:`check_lengths`.
    """
    meta = dataset.select_columns(["prompt_id", "source", "chosen", "rejected"]).to_list()
    if not needs_grouping(meta):
        return None
    grouped = group_dataset(dataset)
    collator = POVIDCollator(processor, cfg.max_length)
    check_example_lengths(grouped, collator)
    spec = noise_spec(meta) or REFERENCE_NOISE
    logger.info("POVID: %d pairs as %d examples (noise: %s)", len(dataset), len(grouped), spec)
    return {
        "train_dataset": grouped,
        "data_collator": collator,
        "noise": spec,
        "noise_base_seed": seed,
        "cache_reference": cfg.precompute_ref,
    }


def dpo_stage(
    model_cfg: ModelConfig,
    cfg: DPOConfig,
    policy_dir: str | Path,
    pairs_table: str | Path,
    output_dir: str | Path,
    seed: int,
    checkpoint_dir: str | Path | None = None,
    select_every: float | None = None,
) -> DPOResult:
    """The DPO stage end to end: read the pairs, train from ``policy_dir``, save, report.

    With no pairs the policy is passed on unchanged (copied to ``output_dir/model``) and the
    result says why; a report ``dpo.json`` is written in both cases. Checkpoints go to
    ``checkpoint_dir`` (default ``output_dir/checkpoints``) and are removed after a successful
    run unless ``dpo.keep_checkpoints``. With ``select_every`` (``pipeline.select_every``) the
    model is also kept every so many steps under ``output_dir/candidates/`` for selection.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    dataset = _read_pairs(pairs_table, output_dir / ".hf_cache")
    if dataset is None or len(dataset) == 0:
        reason = "no pairs after labeling: policy passed on unchanged"
        logger.warning("DPO skipped: %s", reason)
        model_dir = copy_tree(policy_dir, output_dir / "model")
        result = DPOResult(model_dir, 0, skipped_reason=reason)
    else:
        model, processor = load_vlm(
            str(policy_dir), model_cfg.dtype, model_cfg.trust_remote_code, family=model_cfg.family
        )
        callbacks = []
        if select_every is not None:
            gather = bool(cfg.deepspeed) and cfg.lora is None
            candidates = output_dir / artifacts.CANDIDATES_SUBDIR
            callbacks.append(CandidateSaver(select_every, candidates, processor, gather))
        result = train_dpo(
            model,
            processor,
            dataset,
            cfg,
            output_dir,
            seed,
            callbacks=callbacks,
            checkpoint_dir=checkpoint_dir,
            family=model_cfg.family,
        )
    if not cfg.keep_checkpoints:
        shutil.rmtree(checkpoint_dir or output_dir / "checkpoints", ignore_errors=True)
    write_json(result.to_dict(), output_dir / "dpo.json")
    return result


def last_complete_checkpoint(folder: str | Path) -> str | None:
    """The newest checkpoint in ``folder`` that was saved to the end, or ``None``.

    ``Trainer`` writes a checkpoint in place, its ``trainer_state.json`` last: a checkpoint
    without one was being saved when the task was killed, and is passed over (with a
    warning) rather than resumed from.
    """
    folder = Path(folder)
    found = []
    for path in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if folder.is_dir() else ():
        step = path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-")
        if path.is_dir() and step.isdigit():
            found.append((int(step), path))
    for _, path in sorted(found, reverse=True):
        if (path / TRAINER_STATE_NAME).is_file():
            return str(path)
        logger.warning(
            "checkpoint %s was not saved to the end (no %s): passed over", path, TRAINER_STATE_NAME
        )
    return None


def _read_pairs(path: str | Path, cache_dir: Path):
    """The pairs table as a ``datasets.Dataset`` (``None`` for a table with no rows)."""

    if pq.ParquetFile(str(path)).metadata.num_rows == 0:
        return None
    return load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(cache_dir))
