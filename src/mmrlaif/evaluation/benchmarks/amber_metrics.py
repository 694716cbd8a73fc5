"""AMBER's metrics, as its ``inference.py`` computes them (data: :mod:`.amber`).

Generative figures (``evaluation_type g``), over the nouns of each response that are in AMBER's
vocabulary, every occurrence counted:

* CHAIR: hallucinated nouns / all such nouns. A noun is not hallucinated if it is a safe word, a
  ``truth`` word or an associated word of one, or (optionally) similar to one of those;
* Cover: ``truth`` entries mentioned (directly or by an associated word) / all ``truth`` entries;
* Hal: responses with at least one hallucinated noun / all responses;
* Cog: ``hallu`` entries mentioned (directly, by an associated word or by similarity) / all
  ``hallu`` entries.

AMBER finds nouns with NLTK (tokeniser, POS tagger, WordNet lemmatiser) and calls two words
similar when their spaCy ``en_core_web_lg`` vectors have cosine similarity > 0.8.
:func:`reference_noun_extractor` and :meth:`~.nlp.ReferenceNlp.similarity` make those calls; where
the tagger is not installed, :class:`AmberNounExtractor` approximates the noun finder (see its
docstring), and where spaCy's model is not, similarity is skipped. Either is recorded by
:class:`~.nlp.ReferenceNlp` and the figures are marked approximate.

Discriminative figures, per dimension (existence, attribute - with state, number and action -
and relation) and overall: accuracy, and precision / recall / F1 with "No" as the positive class
(precision = correct "No" answers / "No" answers; recall = correct "No" answers / questions whose
truth is "no"). Answers are read by AMBER's rule: only the exact strings ``Yes`` and ``No``.
The results keep the exact counts and fractions; the headline figures are the ones
``inference.py`` prints (:func:`amber_reference_figures`: rounded, 0.001 denominators).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mmrlaif.evaluation.benchmarks.amber import (
    AmberAnnotation,
    AmberData,
    AmberQuery,
    AmberVocabulary,
)
from mmrlaif.evaluation.benchmarks.nlp import DEFAULT_SPACY_MODEL, ReferenceNlp, reference_marks
from mmrlaif.evaluation.metrics import f1_score, parse_yes_no, ratio

logger = logging.getLogger(__name__)

#: Words that AMBER's POS tagger rarely tags as nouns in descriptions; the approximate extractor
#: counts them only after a determiner or number ("a can", "two watches": plurals always count).
_NOUN_AFTER_DETERMINER_ONLY = frozenset(
    {"can", "hot", "watch", "drink", "support", "switch", "sound"}
)
_DETERMINERS = frozenset(
    {
        "a", "an", "the", "this", "that", "these", "those", "one", "two", "three", "four", "five",
        "six", "several", "some", "many", "few", "his", "her", "its", "their", "my", "our", "your",
        "no", "another", "each", "every", "any",
    }
)  # fmt: skip
# WordNet's noun detachment rules (morphy) and a few exceptions.
_NOUN_RULES = (
    ("s", ""),
    ("ses", "s"),
    ("ves", "f"),
    ("xes", "x"),
    ("zes", "z"),
    ("ches", "ch"),
    ("shes", "sh"),
    ("men", "man"),
    ("ies", "y"),
)
_IRREGULAR_NOUNS = {
    "children": "child",
    "geese": "goose",
    "mice": "mouse",
    "feet": "foot",
    "teeth": "tooth",
    "knives": "knife",
    "leaves": "leaf",
    "shelves": "shelf",
}
_TOKEN_RE = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")


class AmberNounExtractor:
    """An approximation of AMBER's noun finder without NLTK.

    AMBER keeps the tokens that NLTK tags as nouns, lemmatised by WordNet, and then the ones in
    its vocabulary. Here: tokens are runs of letters (hyphens inside kept, case kept, as AMBER
    does not lower-case); a token is lemmatised by WordNet's noun rules (``dogs`` -> ``dog``,
    ``glasses`` -> ``glass``, ``men`` -> ``man``, a few irregular plurals) using the vocabulary
    as the dictionary; vocabulary words are taken as nouns, except a handful that are mostly verbs
    or adjectives in descriptions ("can", "hot", "watch"...), which count only after a
    determiner or number.

    Args:
        vocabulary: AMBER's object words (:attr:`AmberVocabulary.words`).
    """

    def __init__(self, vocabulary: Collection[str]) -> None:
        self.vocabulary = frozenset(vocabulary)

    def lemma(self, word: str) -> str:
        """The noun lemma of ``word`` as far as the vocabulary knows, else ``word``."""
        if word in _IRREGULAR_NOUNS:
            return _IRREGULAR_NOUNS[word]
        if word in self.vocabulary:
            return word
        for suffix, replacement in _NOUN_RULES:
            if word.endswith(suffix):
                candidate = word[: -len(suffix)] + replacement
                if candidate in self.vocabulary:
                    return candidate
        return word

    def __call__(self, text: str) -> list[str]:
        """Vocabulary nouns of ``text``, lemmatised, one per occurrence, in order."""
        tokens = _TOKEN_RE.findall(text)
        nouns = []
        for i, token in enumerate(tokens):
            lemma = self.lemma(token)
            if lemma not in self.vocabulary:
                continue
            if (
                lemma in _NOUN_AFTER_DETERMINER_ONLY
                and token == lemma
                and (i == 0 or tokens[i - 1].lower() not in _DETERMINERS)
            ):
                continue
            nouns.append(lemma)
        return nouns


def reference_noun_extractor(
    nlp: ReferenceNlp, vocabulary: Collection[str]
) -> Callable[[str], list[str]]:
    """AMBER's ``extract_nouns``: NLTK tokens tagged ``NN*``, WordNet-lemmatised.

    Where NLTK's tagger is not installed, :class:`AmberNounExtractor` over ``vocabulary`` is used
    instead (and ``nlp`` records it).
    """
    fallback = AmberNounExtractor(vocabulary)

    def extract(text: str) -> list[str]:
        tagged = nlp.pos_tag(nlp.word_tokenize(text))
        if tagged is None:
            return fallback(text)
        return [nlp.lemmatize(word) for word, pos in tagged if pos.startswith("NN")]

    return extract


@dataclass(frozen=True)
class AmberGenerativeResult:
    """AMBER's generative figures (fractions in [0, 1]; 0.0 when a denominator is 0).

    Attributes:
        chair: Hallucinated nouns / vocabulary nouns (every occurrence).
        cover: ``truth`` entries mentioned / ``truth`` entries.
        hal: Responses with >= 1 hallucinated noun / responses.
        cog: ``hallu`` entries mentioned / ``hallu`` entries.
        n_responses, n_hallucinated_responses, n_nouns, n_hallucinated_nouns, n_truth,
        n_truth_covered, n_hallu, n_hallu_covered: The counts behind them.
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


def parse_amber_answer(response: str, strict: bool = True) -> bool | None:
    """Read a discriminative answer: True for yes, False for no.

    Args:
        response: The model's answer.
        strict: AMBER's own rule (the default): only the exact strings ``"Yes"`` and ``"No"``
            are answers; anything else is ``None`` (wrong whatever the truth, and not a "No"
            answer). ``False``: a lenient reading, not AMBER's figures
            (:func:`~mmrlaif.evaluation.metrics.parse_yes_no`), which reads every answer.
    """
    if strict:
        return True if response == "Yes" else False if response == "No" else None
    return parse_yes_no(response)


@dataclass(frozen=True)
class AmberDiscriminativeScores:
    """Discriminative figures of one group of questions, "No" as the positive class.

    Attributes:
        accuracy: Correct answers / questions.
        precision: Correct "No" answers / "No" answers.
        recall: Correct "No" answers / questions whose truth is "no".
        f1: Harmonic mean of precision and recall.
        n, n_correct, n_truth_no, n_answer_no, n_correct_no: The counts behind them.
        n_unparsed: Answers read as neither yes nor no (only with ``strict``).
    """

    accuracy: float
    precision: float
    recall: float
    f1: float
    n: int
    n_correct: int
    n_truth_no: int
    n_answer_no: int
    n_correct_no: int
    n_unparsed: int

    def to_dict(self) -> dict[str, Any]:
        """The scores as JSON-serialisable data."""
        return asdict(self)


def _scores(pairs: Sequence[tuple[bool | None, bool]]) -> AmberDiscriminativeScores:
    correct = sum(p is not None and p == truth for p, truth in pairs)
    truth_no = sum(not truth for _, truth in pairs)
    answer_no = sum(p is False for p, _ in pairs)
    correct_no = sum(p is False and not truth for p, truth in pairs)
    precision, recall = ratio(correct_no, answer_no), ratio(correct_no, truth_no)
    return AmberDiscriminativeScores(
        accuracy=ratio(correct, len(pairs)),
        precision=precision,
        recall=recall,
        f1=f1_score(precision, recall),
        n=len(pairs),
        n_correct=correct,
        n_truth_no=truth_no,
        n_answer_no=answer_no,
        n_correct_no=correct_no,
        n_unparsed=sum(p is None for p, _ in pairs),
    )


@dataclass(frozen=True)
class AmberDiscriminativeResult:
    """Discriminative figures overall and per group.

    Attributes:
        overall: All discriminative questions.
        by_group: ``existence``, ``attribute``, ``relation`` and the attribute kinds ``state``,
            ``number``, ``action`` - those with questions, in that order.
    """

    overall: AmberDiscriminativeScores
    by_group: dict[str, AmberDiscriminativeScores] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-serialisable data."""
        return {
            "overall": self.overall.to_dict(),
            "by_group": {k: v.to_dict() for k, v in self.by_group.items()},
        }


def amber_discriminative(
    annotations: Sequence[AmberAnnotation], responses: Sequence[str], strict: bool = True
) -> AmberDiscriminativeResult:
    """AMBER's discriminative accuracy, precision, recall and F1 ("No" positive).

    Args:
        annotations: Discriminative annotations, one per response.
        responses: The model's answers.
        strict: Read answers by AMBER's exact-string rule (see :func:`parse_amber_answer`).

    Raises:
        ValueError: If the lengths differ or an annotation is generative (naming its id).
    """
    if len(annotations) != len(responses):
        raise ValueError(f"{len(annotations)} annotations but {len(responses)} responses")
    groups: dict[str, list[tuple[bool | None, bool]]] = {
        k: [] for k in ("existence", "attribute", "relation", "state", "number", "action")
    }
    every = []
    for ann, response in zip(annotations, responses, strict=True):
        if ann.answer is None:
            raise ValueError(f"AMBER annotation {ann.id} is {ann.type!r}, not discriminative")
        pair = (parse_amber_answer(response, strict), ann.answer)
        every.append(pair)
        groups[ann.dimension].append(pair)
        if ann.kind is not None:
            groups[ann.kind].append(pair)
    return AmberDiscriminativeResult(
        overall=_scores(every),
        by_group={name: _scores(pairs) for name, pairs in groups.items() if pairs},
    )


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
