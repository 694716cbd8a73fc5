"""Object HalBench (RLHF-V / RLAIF-V): CHAIR on detailed descriptions of 300 COCO images.

Items are the lines of ``obj_halbench_300_with_image.jsonl`` as RLAIF-V ships it: ``image_id``
(a COCO 2014 image id), ``question`` (a request for a detailed description), ``image`` (the image,
base64-encoded) and ``org_idx``; an ``image_path`` (relative to the data root) may replace the
embedded image. The word list is RLAIF-V's ``synonyms_refine.txt`` in the same folder; ground
truth per image is CHAIR's: the node words of its COCO instance categories plus those named in
its reference captions (:func:`~mmrlaif.evaluation.hallucination.coco.load_coco_ground_truth`).

Figures follow RLAIF-V's ``eval/eval_gpt_obj_halbench.py`` (the lexicon path; the GPT path is
:mod:`.object_halbench_llm`) and ``summarize_gpt_obj_halbench_review.py``, computed by
:mod:`.chair` on answers with ``Assistant:`` removed and stripped, as the script reads them:

* response-level hallucination rate (RLAIF-V's "Response Hall", ``CHAIRs_refine``): responses
  with at least one hallucinated object / responses that mention at least one COCO object;
* mention-level hallucination rate (``CHAIRi``): hallucinated object mentions / all object
  mentions, every occurrence counted;
* object recall (``obj_rec``): distinct ground-truth categories a response mentions / ground-truth
  categories, both summed over responses.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from mmrlaif.evaluation.hallucination.chair import ChairResult, ChairVocabulary, chair_metrics
from mmrlaif.evaluation.hallucination.common import (
    BenchmarkFormatError,
    DataRoot,
    Fields,
    Query,
    load_records,
)
from mmrlaif.evaluation.hallucination.nlp import ReferenceNlp

logger = logging.getLogger(__name__)

#: The items file, as RLAIF-V names it.
OBJECT_HALBENCH_FILE = "obj_halbench_300_with_image.jsonl"


@dataclass(frozen=True)
class ObjectHalBenchItem:
    """One Object HalBench item.

    Attributes:
        image_id: COCO 2014 image id.
        question: The prompt.
        record: Where the item is in its file (``"line 3"``), for messages.
        image_bytes: The decoded embedded image, or ``None``.
        image_path: Image file relative to the data root, or ``None``.
        org_idx: The item's ``org_idx`` when given.
    """

    image_id: int
    question: str
    record: str
    image_bytes: bytes | None = field(default=None, repr=False)
    image_path: str | None = None
    org_idx: int | None = None

    def query(self) -> Query:
        """The model query for this item."""
        return Query(
            item=f"object_halbench/{self.record}",
            prompt=self.question,
            image_path=self.image_path,
            image_bytes=self.image_bytes,
        )


def load_object_halbench_items(
    root: DataRoot, rel: str = OBJECT_HALBENCH_FILE
) -> list[ObjectHalBenchItem]:
    """Read Object HalBench items (JSON lines, or a JSON array of the same records).

    Raises:
        BenchmarkDataError: If the file does not exist.
        BenchmarkFormatError: Naming the file and record when a record lacks ``image_id`` or
            ``question``, has neither ``image`` (base64) nor ``image_path``, or its ``image`` is
            not valid base64.
    """
    file = root.path(rel)
    items = []
    for label, record in load_records(root, rel):
        fields = Fields(file, label, record, id_key="image_id")
        image_id, question = fields.integer("image_id"), fields.string("question")
        image_bytes = image_path = None
        if fields.has("image"):
            try:
                image_bytes = base64.b64decode(fields.string("image"), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise fields.error(f"field 'image' is not valid base64 ({exc})") from exc
        elif fields.has("image_path"):
            image_path = fields.string("image_path")
        else:
            raise fields.error("no image: needs 'image' (base64) or 'image_path'")
        org_idx = fields.integer("org_idx") if fields.has("org_idx") else None
        items.append(
            ObjectHalBenchItem(image_id, question, fields.label, image_bytes, image_path, org_idx)
        )
    if not items:
        raise BenchmarkFormatError(file, None, "no items")
    return items


def object_halbench_headline(result: ChairResult) -> dict[str, float]:
    """The three figures RLAIF-V reports, by this project's names.

    ``response_hallucination_rate`` is ``CHAIRs_refine`` ("Response Hall"),
    ``mention_hallucination_rate`` is ``CHAIRi`` ("Object Hall"), ``object_recall`` is ``obj_rec``.
    """
    return {
        "response_hallucination_rate": result.chair_s_refine,
        "mention_hallucination_rate": result.chair_i,
        "object_recall": result.object_recall,
    }


def object_halbench_metrics(
    responses: Sequence[str],
    ground_truth: Sequence[Collection[str]],
    vocabulary: ChairVocabulary,
    nlp: ReferenceNlp | None = None,
) -> ChairResult:
    """Score descriptions as RLAIF-V's lexicon path does (``compute_chair``, no GPT step).

    Args:
        responses: Model responses, one per item.
        ground_truth: For each response, its image's node words
            (:func:`~mmrlaif.evaluation.hallucination.coco.load_coco_ground_truth`).
        vocabulary: ``synonyms_refine.txt`` read in the ``rlaifv`` flavour.
        nlp: Tokenizer and lemmatizer; a fresh :class:`ReferenceNlp` when ``None``.

    Raises:
        ValueError: If the sequences differ in length or a ground-truth entry is a string.
    """
    for index, names in enumerate(ground_truth):
        if isinstance(names, str):
            raise ValueError(f"ground truth of item {index} must be a collection of node words")
    answers = [reference_answer_text(r) for r in responses]
    return chair_metrics(answers, ground_truth, vocabulary, nlp)


def reference_answer_text(answer: str) -> str:
    """An answer as ``load_generated_captions`` reads it: ``Assistant:`` removed, stripped."""
    return answer.replace("Assistant:", "").strip()
