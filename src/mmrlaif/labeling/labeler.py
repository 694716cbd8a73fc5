"""Conquer: a VLM answers yes/no questions about an image; verdicts come from first-token logits.

A claim is accepted iff P("yes") + P("Yes") > P("no") + P("No"), the probabilities read from
the first answer token's distribution, never from parsed text (RLAIF-V). A stricter labeler
rejects only confident "no"s: P(no) / (P(yes) + P(no)) >= a threshold above 0.5.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from mmrlaif.models.chat import format_prompt, split_prompt

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
    prompt prefix are encoded once per image and their KV cache is reused by a batched pass over
    that image's question suffixes. Without it, every question is a full forward pass (batched).

    Args:
        model: The labeler model.
        processor: Its processor.
        batch_size: Questions per forward pass.
        prefix_cache: Reuse one prefix pass per image.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        processor: ProcessorMixin,
        batch_size: int = 64,
        prefix_cache: bool = True,
    ) -> None:
        self.model = model
        self.processor = processor
        self.batch_size = batch_size
        self.prefix_cache = prefix_cache
        tok = processor.tokenizer
        self.yes_ids = answer_token_ids(tok, YES_WORDS)
        self.no_ids = answer_token_ids(tok, NO_WORDS)
        self.forward_passes = 0

    @torch.no_grad()
    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[Verdict]:
        """Verdicts of each (image, question), by one batched forward pass per chunk.

        Raises:
            LabelerError: If the model returns NaN logits.
        """
        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images but {len(questions)} questions")
        if self.prefix_cache:
            return self._answer_with_prefix_cache(images, questions)
        verdicts: list[Verdict] = []
        for start in range(0, len(questions), self.batch_size):
            chunk = slice(start, start + self.batch_size)
            enc = self.processor(
                text=[format_prompt(q) for q in questions[chunk]],
                images=list(images[chunk]),
                return_tensors="pt",
                padding=True,
                padding_side="left",
            ).to(self.model.device)
            logits = self.model(**enc).logits[:, -1, :].float()
            self.forward_passes += 1
            verdicts.extend(self.verdicts_from_logits(logits))
        return verdicts

    def _answer_with_prefix_cache(
        self, images: Sequence[Image.Image], questions: Sequence[str]
    ) -> list[Verdict]:
        tok = self.processor.tokenizer
        groups: dict[int, list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(id(image), []).append(i)
        verdicts: list[Verdict | None] = [None] * len(questions)
        device = self.model.device
        for indices in groups.values():
            prefix_text, _ = split_prompt(questions[indices[0]])
            prefix = self.processor(
                text=[prefix_text], images=[images[indices[0]]], return_tensors="pt"
            ).to(device)
            cache = self.model(**prefix, use_cache=True).past_key_values
            self.forward_passes += 1
            n_prefix = prefix["input_ids"].shape[1]
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                suffix = tok(
                    [split_prompt(questions[i])[1] for i in chunk],
                    return_tensors="pt",
                    padding=True,
                    padding_side="right",
                    add_special_tokens=False,
                ).to(device)
                n_suffix = suffix["input_ids"].shape[1]
                rows = copy.deepcopy(cache)
                rows.batch_repeat_interleave(len(chunk))
                mask = torch.cat(
                    [
                        suffix["attention_mask"].new_ones(len(chunk), n_prefix),
                        suffix["attention_mask"],
                    ],
                    dim=1,
                )
                logits = self.model(
                    input_ids=suffix["input_ids"],
                    attention_mask=mask,
                    past_key_values=rows,
                    cache_position=torch.arange(n_prefix, n_prefix + n_suffix, device=device),
                ).logits
                self.forward_passes += 1
                last = suffix["attention_mask"].sum(dim=1) - 1
                chunk_logits = logits[torch.arange(len(chunk), device=device), last].float()
                for i, v in zip(chunk, self.verdicts_from_logits(chunk_logits), strict=True):
                    verdicts[i] = v
        return verdicts  # type: ignore[return-value]

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
