"""AMBER's discriminative figures, as its ``inference.py`` computes them.

Per dimension (existence, attribute - with state, number and action - and relation) and
overall: accuracy, and precision / recall / F1 with "No" as the positive class (precision =
correct "No" answers / "No" answers; recall = correct "No" answers / questions whose truth is
"no"). Answers are read by AMBER's rule: only the exact strings ``Yes`` and ``No``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mmrlaif.evaluation.hallucination.amber import AmberAnnotation
from mmrlaif.evaluation.metrics import f1_score, parse_yes_no, ratio


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
