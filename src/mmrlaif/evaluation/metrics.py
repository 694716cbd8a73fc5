"""Object-hallucination metrics of the toy world: ObjHal / RespHal / Cover, and POPE.

* :func:`object_hallucination` scores free-form responses against the ground-truth objects of
  each image, using a :class:`~mmrlaif.lexicon.Lexicon` to find object mentions. It is
  CHAIR-like but *not* Rohrbach's CHAIR, and is named apart from it: ObjHal counts each distinct
  object once per response (CHAIR_i counts every occurrence) and RespHal divides by the responses
  that name an object (CHAIR_s by all responses). Rohrbach's CHAIR, as its script computes it,
  is :mod:`mmrlaif.evaluation.hallucination.chair`.
* POPE (Li et al., 2023, "Evaluating Object Hallucination in Large Vision-Language Models") scores
  yes/no answers to "Is there a <object> in the image?" questions as binary classification with
  "yes" as the positive class.

Results are frozen dataclasses with a ``to_dict()`` for JSON.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mmrlaif.lexicon import Lexicon, UnknownObjectError

logger = logging.getLogger(__name__)

_NO_WORDS = frozenset({"no", "not"})
_YES_WORDS = frozenset({"yes"})
_ANSWER_WORD_RE = re.compile(r"[a-z0-9']+")


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or 0.0 when the denominator is 0."""
    return numerator / denominator if denominator else 0.0


def f1_score(precision: float, recall: float) -> float:
    """Harmonic mean of precision and recall; 0.0 when both are 0."""
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@dataclass(frozen=True)
class ObjectHalResult:
    """ObjHal, RespHal and Cover over a set of responses (not Rohrbach's CHAIR: module docstring).

    Each distinct object a response mentions counts once for that response, however often it is
    mentioned ("a dog and another dog" is one mention of dog).

    Attributes:
        object_hal: ObjHal: hallucinated mentions / all mentions (distinct objects per
            response); 0.0 when there are no mentions at all.
        response_hal: RespHal: responses with at least one hallucinated object / responses
            mentioning at least one object; 0.0 when no response mentions an object. Responses
            without mentions are left out of the denominator.
        cover: Ground-truth objects mentioned / all ground-truth objects, summed over responses;
            0.0 when there are no ground-truth objects.
        n_responses: Number of responses.
        n_responses_with_mentions: Responses that mention at least one object.
        n_mentions: Distinct mentioned objects, summed over responses.
        n_hallucinated: Of those, objects not in the response's ground truth.
        n_gt_objects: Distinct ground-truth objects, summed over responses.
        n_gt_covered: Of those, objects the response mentions.
        hallucinated_by_object: Canonical name -> hallucinated mentions of it, sorted by name.
    """

    object_hal: float
    response_hal: float
    cover: float
    n_responses: int
    n_responses_with_mentions: int
    n_mentions: int
    n_hallucinated: int
    n_gt_objects: int
    n_gt_covered: int
    hallucinated_by_object: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-serialisable dict (a copy)."""
        return asdict(self)


def object_hallucination(
    responses: Sequence[str], ground_truth: Sequence[Sequence[str]], lexicon: Lexicon
) -> ObjectHalResult:
    """Compute ObjHal, RespHal and coverage.

    Args:
        responses: Model responses (captions or descriptions), one per image.
        ground_truth: For each response, the names (canonical or any synonym, singular or plural)
            of the objects really in its image.
        lexicon: The object vocabulary used to find mentions.

    Returns:
        The scores and the counts behind them.

    Raises:
        ValueError: If the two sequences differ in length, or a ground-truth entry is a string
            rather than a sequence of names.
        UnknownObjectError: If a ground-truth name is not in the lexicon; the message names the
            item index and the object.
    """
    if len(responses) != len(ground_truth):
        raise ValueError(
            f"{len(responses)} responses but {len(ground_truth)} ground-truth object lists"
        )
    n_with_mentions = n_mentions = n_hallucinated = n_gt = n_covered = n_bad_responses = 0
    by_object: Counter[str] = Counter()
    for index, (response, names) in enumerate(zip(responses, ground_truth, strict=True)):
        if isinstance(names, str):
            raise ValueError(
                f"ground truth for item {index} must be a sequence of object names, "
                f"not the string {names!r}"
            )
        gt: set[str] = set()
        for name in names:
            try:
                gt.add(lexicon.canonical(name))
            except UnknownObjectError as err:
                raise UnknownObjectError(
                    name, f"ground truth for item {index}: unknown object {name!r}"
                ) from err
        mentioned = lexicon.objects_in(response)
        hallucinated = [obj for obj in mentioned if obj not in gt]
        n_mentions += len(mentioned)
        n_hallucinated += len(hallucinated)
        by_object.update(hallucinated)
        if mentioned:
            n_with_mentions += 1
            n_bad_responses += bool(hallucinated)
        n_gt += len(gt)
        n_covered += len(gt.intersection(mentioned))

    result = ObjectHalResult(
        object_hal=ratio(n_hallucinated, n_mentions),
        response_hal=ratio(n_bad_responses, n_with_mentions),
        cover=ratio(n_covered, n_gt),
        n_responses=len(responses),
        n_responses_with_mentions=n_with_mentions,
        n_mentions=n_mentions,
        n_hallucinated=n_hallucinated,
        n_gt_objects=n_gt,
        n_gt_covered=n_covered,
        hallucinated_by_object=dict(sorted(by_object.items())),
    )
    logger.debug("CHAIR: %s", result)
    return result


@dataclass(frozen=True)
class PopeResult:
    """POPE scores, with "yes" (object present) as the positive class.

    Attributes:
        accuracy: Correct predictions / all predictions.
        precision: TP / (TP + FP); 0.0 when nothing is predicted "yes".
        recall: TP / (TP + FN); 0.0 when no label is "yes".
        f1: Harmonic mean of precision and recall; 0.0 when both are 0.
        yes_ratio: Share of predictions that are "yes".
        n: Number of questions.
        n_unparsed: Answers whose first sentence contains none of "yes", "no", "not" (they are
            scored "yes", as POPE does); always 0 for :func:`pope`, which takes booleans.
        tp: Predicted yes, label yes.
        fp: Predicted yes, label no.
        tn: Predicted no, label no.
        fn: Predicted no, label yes.
    """

    accuracy: float
    precision: float
    recall: float
    f1: float
    yes_ratio: float
    n: int
    n_unparsed: int
    tp: int
    fp: int
    tn: int
    fn: int

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-serialisable dict."""
        return asdict(self)


def _first_sentence_words(answer: str) -> list[str]:
    first = answer.strip().lower().split(".", 1)[0]
    return _ANSWER_WORD_RE.findall(first)


def parse_yes_no(answer: str) -> bool:
    """Read a free-form answer as yes (True) or no (False), by POPE's rule.

    POPE's evaluation script keeps the first sentence (text before the first ``.``), splits it
    into words, and reads the answer as "no" if "no" or "not" is one of the words, else as "yes".
    Here case is ignored and every punctuation mark, not only the comma, separates words
    (``"No!"`` is no). An apostrophe stays inside its word, so ``"isn't"`` is not ``"not"``,
    as in POPE.

    Args:
        answer: The model's answer.

    Returns:
        False for no, True for yes (including answers with no yes/no word at all).
    """
    return not _NO_WORDS.intersection(_first_sentence_words(answer))


def _is_unparsed(answer: str) -> bool:
    return not (_NO_WORDS | _YES_WORDS).intersection(_first_sentence_words(answer))


def pope(predictions: Sequence[bool], labels: Sequence[bool]) -> PopeResult:
    """Score yes/no predictions against labels.

    Args:
        predictions: Predicted answers, True for yes.
        labels: True answers, True for yes (object present).

    Returns:
        The scores; all rates are 0.0 for empty input.

    Raises:
        ValueError: If the two sequences differ in length.
    """
    return _pope(predictions, labels, n_unparsed=0)


def pope_from_answers(answers: Sequence[str], labels: Sequence[bool]) -> PopeResult:
    """Parse free-form answers with :func:`parse_yes_no` and score them with :func:`pope`.

    Args:
        answers: The model's answers.
        labels: True answers, True for yes.

    Returns:
        The scores, with ``n_unparsed`` counting answers that contain no yes/no word.

    Raises:
        ValueError: If the two sequences differ in length.
    """
    if isinstance(answers, str):
        raise ValueError("answers must be a sequence of strings, not a string")
    predictions = [parse_yes_no(a) for a in answers]
    n_unparsed = sum(_is_unparsed(a) for a in answers)
    if n_unparsed:
        logger.info("POPE: %d of %d answers had no yes/no word", n_unparsed, len(answers))
    return _pope(predictions, labels, n_unparsed=n_unparsed)


def _pope(predictions: Sequence[bool], labels: Sequence[bool], n_unparsed: int) -> PopeResult:
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels")
    pairs = [(bool(p), bool(y)) for p, y in zip(predictions, labels, strict=True)]
    tp = sum(p and y for p, y in pairs)
    fp = sum(p and not y for p, y in pairs)
    tn = sum(not p and not y for p, y in pairs)
    fn = sum(not p and y for p, y in pairs)
    n = len(pairs)
    precision = ratio(tp, tp + fp)
    recall = ratio(tp, tp + fn)
    f1 = f1_score(precision, recall)
    return PopeResult(
        accuracy=ratio(tp + tn, n),
        precision=precision,
        recall=recall,
        f1=f1,
        yes_ratio=ratio(tp + fp, n),
        n=n,
        n_unparsed=n_unparsed,
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
    )


def headline_of(report: Mapping[str, Any]) -> dict[str, float]:
    """The flat figures of a report in its JSON form (``EvalReport.to_dict``)."""
    objects = report["objects"]
    figures = {
        "object_hal": float(objects["object_hal"]),
        "response_hal": float(objects["response_hal"]),
        "cover": float(objects["cover"]),
        "hallucinated_partner_share": float(report["hallucinated_partner_share"]),
    }
    for category, result in report.get("pope", {}).items():
        figures[f"pope_{category}_accuracy"] = float(result["accuracy"])
        figures[f"pope_{category}_f1"] = float(result["f1"])
        figures[f"pope_{category}_yes_ratio"] = float(result["yes_ratio"])
    # the field's benchmarks, when the evaluation ran some (eval.benchmarks)
    figures.update({f"bench_{k}": float(v) for k, v in report.get("benchmarks", {}).items()})
    return figures
