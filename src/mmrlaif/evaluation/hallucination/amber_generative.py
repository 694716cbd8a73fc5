"""AMBER's generative figures (``evaluation_type g``), as its ``inference.py`` computes them.

Over the nouns of each response that are in AMBER's vocabulary (:mod:`.amber_nouns`), every
occurrence counted:

* CHAIR: hallucinated nouns / all such nouns. A noun is not hallucinated if it is a safe word, a
  ``truth`` word or an associated word of one, or (optionally) similar to one of those;
* Cover: ``truth`` entries mentioned (directly or by an associated word) / all ``truth`` entries;
* Hal: responses with at least one hallucinated noun / all responses;
* Cog: ``hallu`` entries mentioned (directly, by an associated word or by similarity) / all
  ``hallu`` entries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mmrlaif.evaluation.hallucination.amber import AmberAnnotation, AmberVocabulary
from mmrlaif.evaluation.hallucination.amber_nouns import AmberNounExtractor
from mmrlaif.evaluation.metrics import ratio


@dataclass(frozen=True)
class AmberGenerativeResult:
    """AMBER's generative figures (fractions in [0, 1]; 0.0 when a denominator is 0).

    Attributes:
        chair: Hallucinated nouns / vocabulary nouns (every occurrence).
        cover: ``truth`` entries mentioned / ``truth`` entries.
        hal: Responses with >= 1 hallucinated noun / responses.
        cog: ``hallu`` entries mentioned / ``hallu`` entries.
        n_responses: Responses scored.
        n_hallucinated_responses: Responses with >= 1 hallucinated noun.
        n_nouns: Vocabulary nouns, every occurrence.
        n_hallucinated_nouns: Hallucinated nouns, every occurrence.
        n_truth: ``truth`` entries.
        n_truth_covered: ``truth`` entries mentioned.
        n_hallu: ``hallu`` entries.
        n_hallu_covered: ``hallu`` entries mentioned.
    """

    chair: float
    cover: float
    hal: float
    cog: float
    n_responses: int
    n_hallucinated_responses: int
    n_nouns: int
    n_hallucinated_nouns: int
    n_truth: int
    n_truth_covered: int
    n_hallu: int
    n_hallu_covered: int

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-serialisable data."""
        return asdict(self)


def _expand(
    words: Sequence[str], association: Mapping[str, Sequence[str]]
) -> tuple[list[str], list[int]]:
    """AMBER's lookup list: associated words of each entry, then the entries; and their owners."""
    expanded: list[str] = []
    owner: list[int] = []
    for index, word in enumerate(words):
        expanded += association[word]
        owner += [index] * len(association[word])
    return expanded + list(words), owner + list(range(len(words)))


def _first(noun: str, words: Sequence[str], similar: Callable[[str, str], bool]) -> int | None:
    return next((j for j, word in enumerate(words) if similar(noun, word)), None)


def amber_generative(
    annotations: Sequence[AmberAnnotation],
    responses: Sequence[str],
    vocabulary: AmberVocabulary,
    extract_nouns: Callable[[str], Sequence[str]] | None = None,
    similar: Callable[[str, str], bool] | None = None,
) -> AmberGenerativeResult:
    """AMBER's CHAIR, Cover, Hal and Cog.

    Per response, every vocabulary noun is checked in AMBER's order: a safe word is skipped
    (counted, never hallucinated); a ``truth`` word or an associated word of one marks the first
    matching ``truth`` entry covered; otherwise a ``hallu`` word or associated word marks the first
    matching ``hallu`` entry, and if ``similar`` is given the first similar ``hallu`` entry is
    marked too and a noun similar to a ``truth`` word or associated word covers it and is not
    hallucinated; any other noun is hallucinated.

    Args:
        annotations: Generative annotations, one per response.
        responses: The model's descriptions.
        vocabulary: AMBER's vocabulary.
        extract_nouns: Text -> nouns (lemmas); :class:`AmberNounExtractor` when ``None``. Nouns
            outside the vocabulary are ignored.
        similar: AMBER's word-similarity test (spaCy vectors, > 0.8); ``None`` skips it (only
            exact matches count).

    Raises:
        ValueError: If the lengths differ or an annotation is not generative (naming its id).
        KeyError: If an annotation word is not a key of the vocabulary (see :func:`load_amber`).
    """
    if len(annotations) != len(responses):
        raise ValueError(f"{len(annotations)} annotations but {len(responses)} responses")
    words = vocabulary.words
    extract = extract_nouns or AmberNounExtractor(words)
    n_bad_responses = n_nouns = n_bad = n_truth = n_cov = n_hallu = n_cog = 0
    for ann, response in zip(annotations, responses, strict=True):
        if ann.dimension != "generative":
            raise ValueError(f"AMBER annotation {ann.id} is {ann.type!r}, not generative")
        nouns = [n for n in extract(response) if n in words]
        safe, safe_owner = _expand(ann.truth, vocabulary.association)
        hallu, hallu_owner = _expand(ann.hallu, vocabulary.association)
        covered, cognised = [False] * len(ann.truth), [False] * len(ann.hallu)
        bad = 0
        for noun in nouns:
            if noun in vocabulary.safe_words:
                continue
            if noun in safe:
                covered[safe_owner[safe.index(noun)]] = True
                continue
            if noun in hallu:
                cognised[hallu_owner[hallu.index(noun)]] = True
            if similar is not None:
                j = _first(noun, hallu, similar)
                if j is not None:
                    cognised[hallu_owner[j]] = True
                j = _first(noun, safe, similar)
                if j is not None:
                    covered[safe_owner[j]] = True
                    continue
            bad += 1
        n_nouns += len(nouns)
        n_bad += bad
        n_bad_responses += bad > 0
        n_truth += len(ann.truth)
        n_cov += sum(covered)
        n_hallu += len(ann.hallu)
        n_cog += sum(cognised)
    return AmberGenerativeResult(
        chair=ratio(n_bad, n_nouns),
        cover=ratio(n_cov, n_truth),
        hal=ratio(n_bad_responses, len(responses)),
        cog=ratio(n_cog, n_hallu),
        n_responses=len(responses),
        n_hallucinated_responses=n_bad_responses,
        n_nouns=n_nouns,
        n_hallucinated_nouns=n_bad,
        n_truth=n_truth,
        n_truth_covered=n_cov,
        n_hallu=n_hallu,
        n_hallu_covered=n_cog,
    )
