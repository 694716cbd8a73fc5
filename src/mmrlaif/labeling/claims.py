"""Divide: split a response into atomic claims, then turn each claim into a yes/no question."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mmrlaif.lexicon import Lexicon
from mmrlaif.models.chat import ANSWER_SUFFIX


@dataclass(frozen=True)
class Claim:
    """One atomic, self-contained factual claim of a response.

    Attributes:
        text: The claim as a sentence.
        subject: What the claim is about (the surface name for lexicon claims), if known.
    """

    text: str
    subject: str | None = None


class ClaimExtractor(Protocol):
    """Splits a response into claims."""

    def extract(self, response: str, question: str = "") -> list[Claim]:
        """The claims of ``response`` (the answer to ``question``), in order; an empty
        response has none."""
        ...


class QuestionBuilder(Protocol):
    """Turns a response's claims into yes/no questions (with the answer-format suffix)."""

    def questions(self, claims: Sequence[Claim]) -> list[str]:
        """The verification questions of one response's ``claims``, one per claim, in order."""
        ...


class LexiconClaimExtractor:
    """One claim per distinct object the response mentions, found with a synonym lexicon.

    This is the CHAIR-style extractor of the toy world: real models use the LLM extractor.
    """

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon

    def extract(self, response: str, question: str = "") -> list[Claim]:
        """``There is a <surface> in the image.`` for each distinct mentioned object (the
        question plays no part)."""
        claims: list[Claim] = []
        seen: set[str] = set()
        for mention in self.lexicon.extract(response):
            if mention.canonical in seen:
                continue
            seen.add(mention.canonical)
            claims.append(Claim(f"There is a {mention.surface} in the image.", mention.surface))
        return claims


class TemplateQuestionBuilder:
    """``Is there a <subject> in the image? Please answer yes or no.`` for lexicon claims."""

    def questions(self, claims: Sequence[Claim]) -> list[str]:
        """The presence question of each lexicon claim (see :meth:`question`)."""
        return [self.question(c) for c in claims]

    def question(self, claim: Claim) -> str:
        """The presence question of a lexicon claim.

        Raises:
            ValueError: If the claim has no subject (it did not come from a lexicon extractor).
        """
        if not claim.subject:
            raise ValueError(f"template questions need a claim subject: {claim.text!r}")
        return f"Is there a {claim.subject} in the image?{ANSWER_SUFFIX}"
