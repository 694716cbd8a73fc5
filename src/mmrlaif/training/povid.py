"""POVID's online noise rejection and per-example loss, inside TRL's ``DPOTrainer``.

What the reference (YiyangZhou/POVID, ``tool/dpo_trainer_inherent.py`` with
``llava/train/train_dpo_inherent.py``) does at every step, for an example with image ``x``,
question ``q``, ground-truth answer ``y`` and text rejection ``y_t``:

1. ``x`` is noised (:func:`mmrlaif.pairs.noise.add_diffusion_noise`: step 500, not clamped), a
   fresh draw each time the example is loaded, so every epoch;
2. the model runs teacher-forced on ``(q, y)`` with the noised image; the arg-max token at each
   position of ``y`` makes the noise rejection ``r``, exactly as long as ``y`` (here: the
   answer's tokens and its end of turn, the completion of
   :func:`mmrlaif.training.data.encode_answers`);
3. ``r`` is scored with the clean image at ``y``'s positions,
   ``log p(r) = sum_t log p(r_t | x, q, y_<t)`` (the reference gathers the arg-max ids from the
   log-softmax of the chosen answer's clean pass, under the chosen answer's label mask);
4. the loss is ``0.5 * DPO(y, r) + 0.5 * DPO(y, y_t)`` per example.

The reference runs steps 2-3 through each model: the policy's log-probability of the noise
rejection is of the *policy's* arg-max, the reference model's of the *reference's* own arg-max
under the same noised image (``povid.noise_ref_tokens: own``); ``policy`` has the reference
score the policy's tokens instead (one rejected answer for both, textbook DPO). The arg-max
passes run under ``no_grad`` (the tokens carry no gradient; the reference builds a graph it
never uses).

Here, :class:`POVIDDPOTrainer` replaces TRL's ``_compute_loss`` for batches of grouped examples
(:mod:`mmrlaif.training.povid_data`). A noise row is the chosen answer's encoding with its
labels replaced by the arg-max tokens, so TRL's fused LM head scores it (one extra forward of the
chosen answer instead of a second gather from the same logits). The noise of an example in
epoch ``e`` is drawn from :func:`noise_seed` of the DPO run's seed (itself derived from the run
seed and the iteration), the epoch and the prompt id: fresh every epoch, reproducible, and the
same in any batch or on any number of cores or processes.

Reference log-probabilities: those of the chosen and fixed rejected answers never change, so
with ``dpo.precompute_ref`` they are computed once, the first time each example is seen, and
cached (the same figures as a precompute pass, without a pass before training); the noise
rejection's change every epoch (and, with ``policy`` tokens, every step) and are computed at
each step, by the reference model (full fine-tuning: kept resident) or the policy with its
adapters disabled (LoRA).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from accelerate.utils import is_peft_model
from transformers import TrainerCallback
from trl import DPOTrainer
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import use_adapter

from mmrlaif.models.seeded import sample_seed
from mmrlaif.pairs.noise import add_diffusion_noise
from mmrlaif.pairs.table import NoiseSpec
from mmrlaif.training.checkpoint import CheckpointLoadMixin
from mmrlaif.training.data import IGNORE_INDEX, encode_answers
from mmrlaif.training.optim import ProjectorLRMixin
from mmrlaif.training.povid_data import META_KEYS, POVIDCollator

logger = logging.getLogger(__name__)


def noise_seed(seed: int, prompt_id: str, epoch: int) -> int:
    """The seed of an example's image noise in an epoch (run seed, epoch and prompt id)."""
    return sample_seed(seed, f"povid-noise/{prompt_id}", epoch)


def argmax_tokens(logits: torch.Tensor, completion_mask: torch.Tensor) -> list[torch.Tensor]:
    """Per row, the arg-max token predicted for each completion position.

    Args:
        logits: ``(rows, seq, vocab)`` of a teacher-forced pass (position ``t`` predicts
            ``t + 1``).
        completion_mask: ``(rows, seq)``, 1 on the completion's tokens.

    Returns:
        One ``LongTensor`` per row, as long as its completion.
    """
    out = []
    for row in range(logits.shape[0]):
        positions = completion_mask[row].nonzero().squeeze(1)
        out.append(logits[row, positions - 1].argmax(dim=-1))
    return out


def place_tokens(
    labels: torch.Tensor, completion_mask: torch.Tensor, rows: Sequence[int], tokens: Sequence
) -> torch.Tensor:
    """``labels`` with row ``rows[k]`` scoring ``tokens[k]`` at its completion positions
    (everything else of that row ignored).

    Raises:
        ValueError: If a token list is not as long as its row's completion.
    """
    labels = labels.clone()
    for row, toks in zip(rows, tokens, strict=True):
        positions = completion_mask[row].nonzero().squeeze(1)
        if len(positions) != len(toks):
            raise ValueError(
                f"noise rejection of {len(toks)} tokens for a completion of {len(positions)}"
            )
        labels[row] = IGNORE_INDEX
        labels[row, positions] = toks.to(labels.device)
    return labels


class _EpochTracker(TrainerCallback):
    """Tells the trainer which epoch runs (the noise seed's epoch)."""

    def __init__(self, trainer: POVIDDPOTrainer) -> None:
        self.trainer = trainer

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.trainer.noise_epoch = int((state.epoch or 0.0) + 1e-6)
        return control


class POVIDDPOTrainer(ProjectorLRMixin, CheckpointLoadMixin, DPOTrainer):
    """TRL's ``DPOTrainer`` on grouped POVID examples, with the online noise rejection.

    Construct it like ``DPOTrainer`` with a dataset of :func:`group_examples` rows and a
    :class:`~mmrlaif.training.povid_data.POVIDCollator`, plus:

    Args:
        noise: How the noise rejection is built (from the pairs table's online rows).
        noise_base_seed: The DPO run's seed, from which every noise draw derives.
        cache_reference: Compute the reference log-probs of the chosen and fixed rejected
            answers once and keep them (``dpo.precompute_ref``).

    The loss implements TRL's ``sigmoid`` (per example: the weighted sum over its rejections)
    and ``sft`` (TRL's token mean over the chosen answers) loss types.
    """

    def __init__(
        self,
        *args: Any,
        noise: NoiseSpec,
        noise_base_seed: int,
        cache_reference: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.data_collator, POVIDCollator):
            raise TypeError("POVIDDPOTrainer needs a POVIDCollator")
        unsupported = [t for t in self.loss_types if t not in ("sigmoid", "sft")]
        if unsupported:
            raise ValueError(f"dpo.trainer.loss_type {unsupported}: POVID implements sigmoid, sft")
        if self.ref_model is None and not is_peft_model(self.model):
            raise ValueError("POVID's online reference needs a reference model or a PEFT policy")
        self.noise = noise
        self.noise_base_seed = noise_base_seed
        self.noise_epoch = 0
        self.cache_reference = cache_reference
        self.reference_cache: dict[str, tuple[float, list[float]]] = {}
        self.add_callback(_EpochTracker(self))

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        for column in ("prompt_id", "noise"):
            if column not in self._signature_columns:
                self._signature_columns.append(column)

    # -- the noise rejection -----------------------------------------------------------------

    def noised_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The noise rows' chosen answers encoded with their noised images (this epoch's)."""
        images = [
            add_diffusion_noise(
                image,
                noise_seed(self.noise_base_seed, pid, self.noise_epoch),
                self.noise.step,
                clamp=self.noise.clamp,
            )
            for image, pid in zip(inputs["noise_images"], inputs["noise_example_ids"], strict=True)
        ]
        return self._encode(images, inputs)

    def clean_noise_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The noise rows' chosen answers with their clean images (the reference's scoring)."""
        return self._encode(inputs["noise_images"], inputs)

    def _encode(self, images: Sequence, inputs: dict[str, Any]) -> dict[str, Any]:
        enc = encode_answers(
            self.data_collator.chat,
            images,
            inputs["noise_questions"],
            inputs["noise_answers"],
            self.data_collator.max_length,
            inputs["noise_example_ids"],
        )
        return self._prepare_input(enc)

    def noise_tokens(self, noised: dict[str, Any], reference: bool = False) -> list[torch.Tensor]:
        """Per noise row, the arg-max tokens of the policy (or the reference model) on the
        noised image, teacher-forced on the chosen answer; under ``no_grad``."""
        kwargs = {k: v for k, v in noised.items() if k != "completion_mask"}
        with self._no_grad_pass(reference) as model:
            logits = model(**kwargs, use_cache=False).logits
        return argmax_tokens(logits, noised["completion_mask"])

    @contextlib.contextmanager
    def _no_grad_pass(self, reference: bool):
        """``no_grad`` without activation checkpointing, on the policy or the reference."""
        adapters = contextlib.nullcontext()
        model = self.model
        if reference and self.ref_model is not None:
            model = self.ref_model
        elif reference:  # PEFT: the policy with its adapters disabled (TRL's reference)
            unwrapped = self.accelerator.unwrap_model(self.model)
            adapters = use_adapter(
                unwrapped, adapter_name="ref" if "ref" in unwrapped.peft_config else None
            )
        with (
            torch.no_grad(),
            disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs),
            adapters,
        ):
            yield model

    def _reference_logps(self, kwargs: dict[str, Any], labels: torch.Tensor) -> torch.Tensor:
        with self._no_grad_pass(reference=True) as model:
            out = model(**kwargs, labels=labels, fused_lm_head=True)
        return out.log_probs.sum(dim=1).float()

    # -- the loss ------------------------------------------------------------------------------

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        device = self.accelerator.device
        kwargs = {k: v for k, v in inputs.items() if k not in META_KEYS}
        kwargs["use_cache"] = False
        completion = inputs["completion_mask"]
        n_chosen = len(inputs["example_ids"])
        pair_chosen = inputs["pair_chosen"]
        pair_noise = inputs["pair_noise"]
        weights = torch.tensor(inputs["pair_weight"], dtype=torch.float32, device=device)
        noise_rows = [n_chosen + int(j) for j in pair_noise.nonzero().squeeze(1)]
        labels = inputs["input_ids"].masked_fill(completion == 0, IGNORE_INDEX)
        ref_labels, ref_tokens = labels, []
        if noise_rows:
            noised = self.noised_batch(inputs)
            tokens = self.noise_tokens(noised)
            ref_tokens = tokens
            if self.noise.ref_tokens == "own":
                ref_tokens = self.noise_tokens(noised, reference=True)
            labels = place_tokens(labels, completion, noise_rows, tokens)
            ref_labels = place_tokens(ref_labels, completion, noise_rows, ref_tokens)
            self._noise_metrics(mode, inputs, completion, noise_rows, tokens, ref_tokens)

        outputs = model(**kwargs, labels=labels, fused_lm_head=True)
        per_token = outputs.log_probs[:, -(completion.shape[1] - 1) :]
        logps = per_token.sum(dim=1)
        chosen_logps, rejected_logps = logps[:n_chosen], logps[n_chosen:]
        ref_chosen, ref_rejected = self._reference(inputs, kwargs, ref_labels, ref_tokens)

        chosen_ratio = chosen_logps - ref_chosen
        rejected_ratio = rejected_logps - ref_rejected
        delta = chosen_ratio[pair_chosen] - rejected_ratio
        loss = 0.0
        for loss_type, loss_weight in zip(self.loss_types, self.loss_weights, strict=True):
            if loss_type == "sigmoid":
                # per example: sum of its rejections' losses, each weighed 1 / their number
                term = (weights * -F.logsigmoid(self.beta * delta)).sum() / n_chosen
            else:  # "sft": TRL's token mean over the chosen answers
                mask = completion[:n_chosen, 1:].bool()
                term = -per_token[:n_chosen][mask].mean()
            loss = loss + term * loss_weight
        self._loss_metrics(mode, chosen_ratio, rejected_ratio, delta, chosen_logps, rejected_logps)
        self._log_mean(mode, "noise/pairs_noise_share", pair_noise.float())
        if noise_rows:
            noise = pair_noise.to(delta.device)
            self._log_mean(mode, "rewards/margins_noise", self.beta * delta[noise].detach())
            if (~noise).any():
                self._log_mean(mode, "rewards/margins_text", self.beta * delta[~noise].detach())
        return (loss, outputs) if return_outputs else loss

    def _reference(
        self,
        inputs: dict[str, Any],
        kwargs: dict[str, Any],
        ref_labels: torch.Tensor,
        ref_tokens: list[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference log-probs of the chosen rows and of every rejection row (``ref_labels``:
        the batch's labels with the noise rows scoring ``ref_tokens``)."""
        ids = inputs["example_ids"]
        n_chosen = len(ids)
        device = self.accelerator.device
        cached = self.cache_reference and all(pid in self.reference_cache for pid in ids)
        if not cached:
            ref = self._reference_logps(kwargs, ref_labels)
            if self.cache_reference:
                fixed = ref[n_chosen : ref.shape[0] - len(ref_tokens)].tolist()
                pair_chosen = inputs["pair_chosen"].tolist()[: len(fixed)]
                for i, pid in enumerate(ids):
                    mine = [v for v, c in zip(fixed, pair_chosen, strict=True) if c == i]
                    self.reference_cache[pid] = (float(ref[i]), mine)
            return ref[:n_chosen], ref[n_chosen:]
        chosen = torch.tensor([self.reference_cache[pid][0] for pid in ids], device=device)
        fixed = [v for pid in ids for v in self.reference_cache[pid][1]]
        rejected = torch.tensor(fixed, device=device, dtype=torch.float32)
        if ref_tokens:
            clean = self.clean_noise_batch(inputs)
            clean_kwargs = {k: v for k, v in clean.items() if k != "completion_mask"}
            clean_kwargs["use_cache"] = False
            rows = range(len(ref_tokens))
            labels = place_tokens(clean["input_ids"], clean["completion_mask"], rows, ref_tokens)
            rejected = torch.cat([rejected, self._reference_logps(clean_kwargs, labels)])
        return chosen.float(), rejected

    # -- metrics -------------------------------------------------------------------------------

    def _log_mean(self, mode: str, name: str, values: torch.Tensor) -> None:
        """Append the mean of ``values`` over every process (nothing when there are none)."""
        values = values.detach().float().reshape(-1)
        pair = torch.stack([values.sum(), values.new_tensor(float(values.numel()))])
        total, count = self.accelerator.gather(pair).reshape(-1, 2).sum(dim=0)
        if count > 0:
            self._metrics[mode][name].append((total / count).item())

    def _loss_metrics(self, mode, chosen_ratio, rejected_ratio, delta, chosen_logps, rejected):
        self._log_mean(mode, "rewards/chosen", self.beta * chosen_ratio)
        self._log_mean(mode, "rewards/rejected", self.beta * rejected_ratio)
        self._log_mean(mode, "rewards/accuracies", (delta > 0).float())
        self._log_mean(mode, "rewards/margins", self.beta * delta)
        self._log_mean(mode, "logps/chosen", chosen_logps)
        self._log_mean(mode, "logps/rejected", rejected)

    def _noise_metrics(self, mode, inputs, completion, noise_rows, tokens, ref_tokens) -> None:
        """Share of the noise rejection's tokens equal to the chosen answer's, and (own
        tokens) share of the reference's arg-max equal to the policy's."""
        ids = inputs["input_ids"]
        same, agree = [], []
        for row, toks, ref in zip(noise_rows, tokens, ref_tokens, strict=True):
            truth = ids[row, completion[row].nonzero().squeeze(1)]
            same.append((toks.to(truth.device) == truth).float())
            agree.append((toks == ref.to(toks.device)).float())
        self._log_mean(mode, "noise/tokens_as_chosen", torch.cat(same))
        self._log_mean(mode, "noise/reference_tokens_as_policy", torch.cat(agree))
