"""AMBER's metrics, as its ``inference.py`` computes them (data: :mod:`.amber`).

The public face of AMBER's scoring: :func:`score_amber` / :func:`score_amber_reference` split
the responses into generative and discriminative ones and score each part, and
:func:`amber_reference_figures` gives the figures ``inference.py`` prints. The parts live
beside this module and are importable from here:

* :mod:`.amber_generative`: CHAIR, Cover, Hal and Cog over the nouns of each response;
* :mod:`.amber_nouns`: how those nouns are found (NLTK as AMBER does, or an approximation);
* :mod:`.amber_discriminative`: accuracy, and precision / recall / F1 with "No" positive.

AMBER calls two words similar when their spaCy ``en_core_web_lg`` vectors have cosine
similarity > 0.8 (:meth:`~.nlp.ReferenceNlp.similarity`); where spaCy's model is not installed,
similarity is skipped. That, or a noun-finder fallback, is recorded by
:class:`~.nlp.ReferenceNlp` and the figures are marked approximate.
The results keep the exact counts and fractions; the headline figures are the ones
``inference.py`` prints (:func:`amber_reference_figures`: rounded, 0.001 denominators).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mmrlaif.evaluation.hallucination.amber import AmberAnnotation, AmberData, AmberQuery
from mmrlaif.evaluation.hallucination.amber_discriminative import (
    AmberDiscriminativeResult,
    AmberDiscriminativeScores,
    amber_discriminative,
    parse_amber_answer,
)
from mmrlaif.evaluation.hallucination.amber_generative import (
    AmberGenerativeResult,
    amber_generative,
)
from mmrlaif.evaluation.hallucination.amber_nouns import (
    AmberNounExtractor,
    reference_noun_extractor,
)
from mmrlaif.evaluation.hallucination.nlp import DEFAULT_SPACY_MODEL, ReferenceNlp, reference_marks

logger = logging.getLogger(__name__)

__all__ = [
    "AMBER_SIMILARITY",
    "AmberDiscriminativeResult",
    "AmberDiscriminativeScores",
    "AmberGenerativeResult",
    "AmberNounExtractor",
    "AmberResult",
    "amber_discriminative",
    "amber_generative",
    "amber_reference_figures",
    "parse_amber_answer",
    "reference_noun_extractor",
    "score_amber",
    "score_amber_reference",
]


@dataclass(frozen=True)
class AmberResult:
    """AMBER figures: generative and/or discriminative, whichever the queries held.

    Attributes:
        generative: CHAIR, Cover, Hal, Cog; ``None`` without generative queries.
        discriminative: Accuracy / precision / recall / F1; ``None`` without such queries.
        amber_score: ``(1 - CHAIR + F1) / 2`` (the AMBER paper's summary score) when both parts
            are there, else ``None``.
    """

    generative: AmberGenerativeResult | None
    discriminative: AmberDiscriminativeResult | None
    amber_score: float | None

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-serialisable data."""
        return {
            "generative": self.generative.to_dict() if self.generative else None,
            "discriminative": self.discriminative.to_dict() if self.discriminative else None,
            "amber_score": self.amber_score,
        }

    def headline(self) -> dict[str, float]:
        """Flat figures as ``inference.py`` prints them, as fractions (see
        :func:`amber_reference_figures`): ``chair``, ``cover``, ``hal``, ``cog``, ``accuracy``,
        ``precision``, ``recall``, ``f1``, ``<group>_accuracy``, ``<group>_f1``,
        ``amber_score``."""
        return amber_reference_figures(self)


def _pct(score: int, num: int) -> float:
    """``round(score / num * 100, 1)`` with ``num`` started at 0.001, as ``metrics.txt`` does."""
    return round(score / (num + 0.001) * 100, 1)


def _reference_prf(scores: AmberDiscriminativeScores, eps: float) -> dict[str, float]:
    precision = _pct(scores.n_correct_no, scores.n_answer_no)
    recall = _pct(scores.n_correct_no, scores.n_truth_no)
    f1 = round(
        2 * (precision / 100) * (recall / 100) / (precision / 100 + recall / 100 + eps) * 100, 1
    )
    return {
        "accuracy": _pct(scores.n_correct, scores.n),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def amber_reference_figures(result: AmberResult) -> dict[str, float]:
    """The figures AMBER's ``inference.py`` prints, divided by 100.

    Its rules, kept: every denominator starts at 0.001 (``data/metrics.txt``); each figure is a
    percentage rounded to 0.1; F1 comes from the rounded precision and recall with 1e-4 added to
    their sum (1e-3 for existence). ``amber_score`` is the paper's ``(100 - CHAIR + F1) / 2``
    from those printed figures.
    """
    out: dict[str, float] = {}
    if result.generative:
        g = result.generative
        out["chair"] = _pct(g.n_hallucinated_nouns, g.n_nouns)
        out["cover"] = _pct(g.n_truth_covered, g.n_truth)
        out["hal"] = round(
            100 - (g.n_responses - g.n_hallucinated_responses) / (g.n_responses + 0.001) * 100, 1
        )
        out["cog"] = _pct(g.n_hallu_covered, g.n_hallu)
    if result.discriminative:
        out.update(_reference_prf(result.discriminative.overall, 1e-4))
        for group, scores in result.discriminative.by_group.items():
            figures = _reference_prf(scores, 1e-3 if group == "existence" else 1e-4)
            out[f"{group}_accuracy"] = figures["accuracy"]
            out[f"{group}_f1"] = figures["f1"]
    if result.generative and result.discriminative:
        out["amber_score"] = (100 - out["chair"] + out["f1"]) / 2
    return {name: value / 100 for name, value in out.items()}


def score_amber(
    data: AmberData,
    queries: Sequence[AmberQuery],
    responses: Sequence[str],
    *,
    strict: bool = True,
    extract_nouns: Callable[[str], Sequence[str]] | None = None,
    similar: Callable[[str, str], bool] | None = None,
) -> AmberResult:
    """Score responses to AMBER queries, splitting them into generative and discriminative.

    Raises:
        ValueError: If the lengths differ.
    """
    if len(queries) != len(responses):
        raise ValueError(f"{len(queries)} AMBER queries but {len(responses)} responses")
    gen: list[tuple[AmberAnnotation, str]] = []
    dis: list[tuple[AmberAnnotation, str]] = []
    for query, response in zip(queries, responses, strict=True):
        ann = data.annotations[query.id]
        (gen if ann.dimension == "generative" else dis).append((ann, response))
    generative = (
        amber_generative(
            [a for a, _ in gen], [r for _, r in gen], data.vocabulary, extract_nouns, similar
        )
        if gen
        else None
    )
    discriminative = (
        amber_discriminative([a for a, _ in dis], [r for _, r in dis], strict) if dis else None
    )
    score = (
        (1 - generative.chair + discriminative.overall.f1) / 2
        if generative and discriminative
        else None
    )
    return AmberResult(generative, discriminative, score)


#: AMBER's ``--similarity_score`` default.
AMBER_SIMILARITY = 0.8


def score_amber_reference(
    data: AmberData,
    queries: Sequence[AmberQuery],
    responses: Sequence[str],
    answer_rule: str = "reference",
    spacy_model: str | None = DEFAULT_SPACY_MODEL,
) -> tuple[AmberResult, dict[str, Any]]:
    """Score as ``inference.py`` does: NLTK nouns, spaCy similarity, the exact-answer rule.

    Args:
        data: AMBER's data.
        queries: The queries answered.
        responses: One answer per query.
        answer_rule: ``reference`` (exact ``Yes``/``No``) or ``lenient``.
        spacy_model: The similarity model (``None``: no similarity step).

    Returns:
        The result and its reference marks (:func:`~.nlp.reference_marks`): any fallback used
        for a missing NLTK resource or spaCy model is named there.
    """
    nlp = ReferenceNlp(spacy_model)
    generative = any(data.annotations[q.id].dimension == "generative" for q in queries)
    result = score_amber(
        data,
        queries,
        responses,
        strict=answer_rule == "reference",
        extract_nouns=reference_noun_extractor(nlp, data.vocabulary.words),
        similar=nlp.similarity(AMBER_SIMILARITY) if generative else None,
    )
    return result, reference_marks(nlp, answer_rule)
