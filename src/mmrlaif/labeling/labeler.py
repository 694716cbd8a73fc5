"""Conquer: a VLM answers yes/no questions about an image; verdicts come from first-token logits.

A claim is accepted iff P("yes") + P("Yes") > P("no") + P("No"), the probabilities read from
the first answer token's distribution, never from parsed text (RLAIF-V).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from mmrlaif.models.chat import format_prompt

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

    Args:
        model: The labeler model.
        processor: Its processor.
        batch_size: Questions per forward pass.
    """

    def __init__(self, model: PreTrainedModel, processor: ProcessorMixin, batch_size: int = 64):
        self.model = model
        self.processor = processor
        self.batch_size = batch_size
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
