"""POPE (Li et al., 2023): yes/no object-presence questions on COCO, three negative samplings.

Question files are POPE's ``coco_pope_{random,popular,adversarial}.json``: JSON lines (a JSON
array is accepted too) of ``{"question_id", "image", "text", "label"}`` with ``label`` ``"yes"``
or ``"no"`` and ``image`` a COCO file name, found under an image folder of the data root.

Scoring is POPE's ``evaluate.py`` by default, quirks included (:func:`pope_reference_answer`):
the text before the first ``.`` is kept, commas are removed, it is split on spaces, and the
answer is "no" iff one of the words is exactly ``No``, ``no`` or ``not``; anything else is "yes"
(so ``NO``, ``No!``, ``(No)`` and ``Not sure`` read as yes). Accuracy, precision, recall and F1
with "yes" as the positive class, and the yes-ratio of the predictions. ``answer_rule="lenient"``
reads answers case-insensitively with every punctuation mark separating words
(:func:`~mmrlaif.evaluation.metrics.parse_yes_no`, the toy world's rule): a saner reading, but
not POPE's figures, and the result says so.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from mmrlaif.evaluation.hallucination.common import (
    BenchmarkFormatError,
    DataRoot,
    Fields,
    Query,
    load_records,
)
from mmrlaif.evaluation.metrics import PopeResult, pope, pope_from_answers

logger = logging.getLogger(__name__)

#: POPE's negative-sampling settings.
POPE_SPLITS: tuple[str, ...] = ("random", "popular", "adversarial")
#: File name of a split's questions; ``{split}`` is replaced.
POPE_FILE_PATTERN = "coco_pope_{split}.json"


@dataclass(frozen=True)
class PopeItem:
    """One POPE question.

    Attributes:
        question_id: The question's id (unique within its file).
        image: Image file name (e.g. ``COCO_val2014_000000310196.jpg``).
        text: The question.
        label: True when the object is in the image (label ``"yes"``).
    """

    question_id: int | str
    image: str
    text: str
    label: bool

    def query(self, split: str, image_dir: str) -> Query:
        """The model query for this question; the image is ``<image_dir>/<image>``."""
        path = f"{image_dir.rstrip('/')}/{self.image}" if image_dir not in ("", ".") else self.image
        return Query(item=f"pope/{split}/{self.question_id}", prompt=self.text, image_path=path)


def load_pope_split(root: DataRoot, rel: str) -> list[PopeItem]:
    """Read one POPE question file.

    Raises:
        BenchmarkDataError: If the file does not exist.
        BenchmarkFormatError: Naming the file and the record (line and ``question_id``) when a
            field is missing or mistyped, a label is not ``"yes"``/``"no"``, a ``question_id``
            repeats, or the file has no questions.
    """
    file = root.path(rel)
    items: list[PopeItem] = []
    seen: set[int | str] = set()
    for label, record in load_records(root, rel):
        fields = Fields(file, label, record, id_key="question_id")
        qid = record.get("question_id")
        if isinstance(qid, bool) or not isinstance(qid, int | str):
            raise fields.error(f"field 'question_id' must be an integer or string, got {qid!r}")
        if qid in seen:
            raise fields.error(f"duplicate question_id {qid!r}")
        seen.add(qid)
        items.append(
            PopeItem(
                question_id=qid,
                image=fields.string("image"),
                text=fields.string("text"),
                label=fields.choice("label", ("yes", "no")) == "yes",
            )
        )
    if not items:
        raise BenchmarkFormatError(file, None, "no questions")
    return items


def load_pope(
    root: DataRoot,
    splits: Sequence[str] = POPE_SPLITS,
    file_pattern: str = POPE_FILE_PATTERN,
) -> dict[str, list[PopeItem]]:
    """Read the question files of several POPE splits.

    Args:
        root: The data root.
        splits: The splits to read, e.g. ``("random", "popular", "adversarial")``.
        file_pattern: A split's file relative to ``root``, with ``{split}`` in it.

    Returns:
        Split -> its questions, in file order.

    Raises:
        BenchmarkDataError: Naming the missing file of a split.
        BenchmarkFormatError: As :func:`load_pope_split`.
    """
    return {split: load_pope_split(root, file_pattern.format(split=split)) for split in splits}


#: How answers are read: POPE's ``evaluate.py`` (the default), or case-insensitively.
POPE_ANSWER_RULES: tuple[str, ...] = ("reference", "lenient")


def pope_reference_answer(text: str) -> bool:
    """An answer as POPE's ``evaluate.py`` reads it: True for yes, False for no.

    Case-sensitive: ``"No"``, ``"no"`` or ``"not"`` must be a whole space-separated word of the
    text before the first ``.`` once commas are removed, so ``"No!"`` and ``"NO"`` are yes.
    """
    words = text.split(".")[0].replace(",", "").split(" ")
    return not any(word in ("No", "not", "no") for word in words)


def score_pope(
    items: Sequence[PopeItem], answers: Sequence[str], answer_rule: str = "reference"
) -> PopeResult:
    """Score free-form answers to POPE questions.

    Args:
        items: The questions.
        answers: The model's answers, in the same order.
        answer_rule: ``reference`` (POPE's ``evaluate.py``) or ``lenient`` (not POPE's figure).

    Returns:
        Accuracy, precision, recall, F1 (positive class "yes"), yes-ratio and the counts;
        ``n_unparsed`` counts answers with no yes/no word by the lenient reading (scored "yes").

    Raises:
        ValueError: If the lengths differ or the rule is unknown.
    """
    if len(items) != len(answers):
        raise ValueError(f"{len(items)} POPE questions but {len(answers)} answers")
    labels = [item.label for item in items]
    if answer_rule == "lenient":
        return pope_from_answers(list(answers), labels)
    if answer_rule != "reference":
        raise ValueError(f"unknown POPE answer rule {answer_rule!r}: one of {POPE_ANSWER_RULES}")
    result = pope([pope_reference_answer(a) for a in answers], labels)
    n_unparsed = pope_from_answers(list(answers), labels).n_unparsed
    return dataclasses.replace(result, n_unparsed=n_unparsed)
