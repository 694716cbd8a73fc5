"""Conquer: a VLM answers yes/no questions about an image; verdicts come from first-token logits.

A claim is accepted iff P("yes") + P("Yes") > P("no") + P("No"), the probabilities read from
the first answer token's distribution, never from parsed text (RLAIF-V). A stricter labeler
rejects only confident "no"s: P(no) / (P(yes) + P(no)) >= a threshold above 0.5.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from mmrlaif.models.chat import ChatFormat
from mmrlaif.models.families import family_of, submodule

logger = logging.getLogger(__name__)

YES_WORDS: tuple[str, ...] = ("yes", "Yes")
NO_WORDS: tuple[str, ...] = ("no", "No")


class LabelerError(ValueError):
    """The labeler produced unusable output (e.g. NaN logits)."""


@dataclass(frozen=True)
class Verdict:
    """Yes/no probabilities of one question and the resulting verdict."""

    p_yes: float
    p_no: float

    @property
    def accepted(self) -> bool:
        """The claim holds iff P(yes) > P(no)."""
        return self.p_yes > self.p_no

    def accepted_at(self, reject_threshold: float = 0.5) -> bool:
        """The claim holds unless P(no) / (P(yes) + P(no)) >= ``reject_threshold``, i.e. iff
        t * P(yes) > (1 - t) * P(no): at 0.5 exactly :attr:`accepted`; no probability mass on
        either answer is a rejection at any threshold."""
        return reject_threshold * self.p_yes > (1.0 - reject_threshold) * self.p_no


class YesNoLabeler(Protocol):
    """Anything that answers yes/no questions about images with probabilities."""

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[Verdict]:
        """Verdicts of each (image, question), in order."""
        ...


def answer_token_ids(tokenizer, words: Sequence[str]) -> list[int]:
    """Token ids that spell each word as a single token, with and without a leading space.

    Raises:
        ValueError: If no form of any word is a single token.
    """
    ids: set[int] = set()
    for word in words:
        for form in (f" {word}", word):
            encoded = tokenizer.encode(form, add_special_tokens=False)
            if len(encoded) == 1:
                ids.add(encoded[0])
    if not ids:
        raise ValueError(f"none of {list(words)} is a single token for this tokenizer")
    return sorted(ids)


class VLMYesNoLabeler:
    """A local VLM as the labeler: the policy itself (self-feedback) or another checkpoint.

    With ``prefix_cache`` (the default) the questions are grouped by image: the image and the
    prompt prefix (the chat format's per-image prefix) are encoded once per image and their KV
    cache is reused by a batched pass over that image's question suffixes. The suffix ids are
    the full prompt's ids after the prefix's (:meth:`ChatFormat.suffix_ids`), so prefix ids +
    suffix ids are the full prompt's ids; this is checked on the first image against the
    processor's own encoding of the full prompt, and where it fails (or the template has no
    prefix to split at) the labeler says so once and answers with full passes. Families with
    3-D rope positions (Qwen) get explicit positions for the suffix. Without the cache, every
    question is a full forward pass (batched).

    Args:
        model: The labeler model.
        processor: Its processor.
        batch_size: Questions per forward pass.
        prefix_cache: Reuse one prefix pass per image.
        family: The model family, when not detected from the model (``model.family``).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        processor: ProcessorMixin,
        batch_size: int = 64,
        prefix_cache: bool = True,
        family: str | None = None,
    ) -> None:
        self.model = model
        self.processor = processor
        self.batch_size = batch_size
        self.chat = ChatFormat(processor)
        self.family = family_of(model, family)
        self.prefix_cache = prefix_cache and self._can_split()
        self._checked = False
        tok = processor.tokenizer
        self.yes_ids = answer_token_ids(tok, YES_WORDS)
        self.no_ids = answer_token_ids(tok, NO_WORDS)
        self.forward_passes = 0

    def _can_split(self) -> bool:
        if self.chat.prefix is None:
            logger.warning(
                "labeler: %s's chat template has no special token before the question; "
                "no prefix cache, full passes",
                self.family.name,
            )
            return False
        return True

    @torch.no_grad()
    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[Verdict]:
        """Verdicts of each (image, question), by one batched forward pass per chunk.

        Raises:
            LabelerError: If the model returns NaN logits.
        """
        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images but {len(questions)} questions")
        if self.prefix_cache:
            verdicts = self._answer_with_prefix_cache(images, questions)
            if verdicts is not None:
                return verdicts
        verdicts: list[Verdict] = []
        for start in range(0, len(questions), self.batch_size):
            chunk = slice(start, start + self.batch_size)
            enc = self.chat.encode_prompts(questions[chunk], images[chunk]).to(self.model.device)
            logits = self.model(**enc).logits[:, -1, :].float()
            self.forward_passes += 1
            verdicts.extend(self.verdicts_from_logits(logits))
        return verdicts

    def _check_split(self, prefix_ids: torch.Tensor, image: Image.Image, question: str) -> bool:
        """Whether prefix ids + suffix ids equal the processor's ids of the full prompt."""
        full = self.chat.encode_prompts([question], [image])["input_ids"][0].tolist()
        split = prefix_ids[0].tolist() + self.chat.suffix_ids([question])[0]
        self._checked = True
        if full != split:
            logger.warning(
                "labeler: %s's prompt does not split into prefix + suffix ids equal to the full "
                "prompt's (%d vs %d tokens); no prefix cache, full passes",
                self.family.name,
                len(split),
                len(full),
            )
            self.prefix_cache = False
        return self.prefix_cache

    def _answer_with_prefix_cache(
        self, images: Sequence[Image.Image], questions: Sequence[str]
    ) -> list[Verdict] | None:
        groups: dict[int, list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(id(image), []).append(i)
        verdicts: list[Verdict | None] = [None] * len(questions)
        device = self.model.device
        pad_id = self.processor.tokenizer.pad_token_id or 0
        for indices in groups.values():
            image = images[indices[0]]
            prefix = self.processor(
                text=[self.chat.prefix],
                images=[[image]],
                return_tensors="pt",
                add_special_tokens=self.chat.add_special_tokens,
            )
            if not self._checked and not self._check_split(
                prefix["input_ids"], image, questions[indices[0]]
            ):
                return None
            prefix = prefix.to(device)
            cache = self.model(**prefix, use_cache=True).past_key_values
            rope_deltas = self._rope_deltas()
            self.forward_passes += 1
            n_prefix = prefix["input_ids"].shape[1]
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                suffixes = self.chat.suffix_ids([questions[i] for i in chunk])
                n_suffix = max(map(len, suffixes))
                ids = torch.full((len(chunk), n_suffix), pad_id, dtype=torch.long)
                suffix_mask = torch.zeros((len(chunk), n_suffix), dtype=torch.long)
                for row, suffix in enumerate(suffixes):
                    ids[row, : len(suffix)] = torch.tensor(suffix)
                    suffix_mask[row, : len(suffix)] = 1
                ids, suffix_mask = ids.to(device), suffix_mask.to(device)
                rows = copy.deepcopy(cache)
                rows.batch_repeat_interleave(len(chunk))
                mask = torch.cat([suffix_mask.new_ones(len(chunk), n_prefix), suffix_mask], dim=1)
                positions = torch.arange(n_prefix, n_prefix + n_suffix, device=device)
                extra = {}
                if rope_deltas is not None:
                    text = positions.view(1, 1, -1) + rope_deltas.to(device).view(1, -1, 1)
                    extra["position_ids"] = text.expand(3, len(chunk), -1)
                logits = self.model(
                    input_ids=ids,
                    attention_mask=mask,
                    past_key_values=rows,
                    cache_position=positions,
                    **extra,
                ).logits
                self.forward_passes += 1
                last = suffix_mask.sum(dim=1) - 1
                chunk_logits = logits[torch.arange(len(chunk), device=device), last].float()
                for i, v in zip(chunk, self.verdicts_from_logits(chunk_logits), strict=True):
                    verdicts[i] = v
        return verdicts  # type: ignore[return-value]

    def _rope_deltas(self) -> torch.Tensor | None:
        """Qwen's M-RoPE: the offset of text positions after the image, set by the prefix pass
        (the suffix's positions are its cache positions plus this)."""
        if not self.family.mrope:
            return None
        deltas = getattr(submodule(self.model, "model"), "rope_deltas", None)
        if deltas is None:
            raise LabelerError(f"{self.family.name}: the prefix pass left no rope_deltas")
        return deltas

    def verdicts_from_logits(self, logits: torch.Tensor) -> list[Verdict]:
        """Verdicts from first-answer-token logits of shape (batch, vocab).

        Raises:
            LabelerError: If any logit is NaN.
        """
        if torch.isnan(logits).any():
            bad = torch.isnan(logits).any(dim=-1).nonzero().flatten().tolist()
            raise LabelerError(f"NaN logits from the labeler for batch rows {bad}")
        probs = logits.softmax(dim=-1)
        p_yes = probs[:, self.yes_ids].sum(dim=-1)
        p_no = probs[:, self.no_ids].sum(dim=-1)
        return [Verdict(float(y), float(n)) for y, n in zip(p_yes, p_no, strict=True)]
