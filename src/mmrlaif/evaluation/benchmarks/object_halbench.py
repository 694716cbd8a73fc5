"""Object HalBench (RLHF-V / RLAIF-V): CHAIR on detailed descriptions of 300 COCO images.

Items are the lines of ``obj_halbench_300_with_image.jsonl`` as RLAIF-V ships it: ``image_id``
(a COCO 2014 image id), ``question`` (a request for a detailed description), ``image`` (the image,
base64-encoded) and ``org_idx``; an ``image_path`` (relative to the data root) may replace the
embedded image. Ground truth per image is CHAIR's: the COCO categories of its instance
annotations plus the objects named in its reference captions
(:func:`~mmrlaif.evaluation.benchmarks.coco.load_coco_ground_truth`).

Figures follow RLAIF-V's ``eval/eval_gpt_obj_halbench.py`` (the lexicon path, without the GPT
object-extraction step) and ``summarize_gpt_obj_halbench_review.py``:

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
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mmrlaif.evaluation.benchmarks.coco import CocoObjectExtractor
from mmrlaif.evaluation.benchmarks.common import (
    BenchmarkFormatError,
    DataRoot,
    Fields,
    Query,
    load_records,
    ratio,
)
from mmrlaif.evaluation.lexicon import UnknownObjectError

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


@dataclass(frozen=True)
class ObjectHalBenchResult:
    """Object HalBench figures (fractions in [0, 1]; 0.0 when a denominator is 0).

    Attributes:
        response_hallucination_rate: Responses with >= 1 hallucinated object / responses that
            mention at least one COCO object (responses mentioning none are left out).
        mention_hallucination_rate: Hallucinated mentions / all mentions (every occurrence).
        object_recall: Distinct ground-truth categories mentioned / ground-truth categories,
            summed over responses.
        chair_s_all: Responses with >= 1 hallucinated object / all responses (CHAIR_s of
            Rohrbach et al.; RLAIF-V's plain ``CHAIRs``).
        n_responses: Responses scored.
        n_responses_with_mentions: Of those, responses that mention at least one COCO object.
        n_hallucinated_responses: Responses with at least one hallucinated mention.
        n_mentions: Object mentions, every occurrence.
        n_hallucinated_mentions: Of those, mentions of a category not in the ground truth.
        n_gt_objects: Ground-truth categories, summed over responses.
        n_gt_mentioned: Of those, categories the response mentions.
        hallucinated_by_object: Category -> hallucinated mentions, sorted by category.
    """

    response_hallucination_rate: float
    mention_hallucination_rate: float
    object_recall: float
    chair_s_all: float
    n_responses: int
    n_responses_with_mentions: int
    n_hallucinated_responses: int
    n_mentions: int
    n_hallucinated_mentions: int
    n_gt_objects: int
    n_gt_mentioned: int
    hallucinated_by_object: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-serialisable data."""
        return asdict(self)

    def headline(self) -> dict[str, float]:
        """The three reported figures."""
        return {
            "response_hallucination_rate": self.response_hallucination_rate,
            "mention_hallucination_rate": self.mention_hallucination_rate,
            "object_recall": self.object_recall,
        }


def object_halbench_metrics(
    responses: Sequence[str],
    ground_truth: Sequence[Collection[str]],
    extractor: CocoObjectExtractor | None = None,
) -> ObjectHalBenchResult:
    """Score descriptions against each image's ground-truth COCO objects.

    Args:
        responses: Model responses, one per item.
        ground_truth: For each response, the objects in its image (COCO categories, or any name
            the lexicon maps to one).
        extractor: Finds object mentions; the default COCO extractor when ``None``.

    Returns:
        The figures and the counts behind them.

    Raises:
        ValueError: If the sequences differ in length or a ground-truth entry is a string.
        UnknownObjectError: If a ground-truth name is not a COCO object (naming the item).
    """
    if len(responses) != len(ground_truth):
        raise ValueError(f"{len(responses)} responses but {len(ground_truth)} ground truths")
    extractor = extractor or CocoObjectExtractor()
    n_with = n_bad = n_mentions = n_hall = n_gt = n_hit = 0
    by_object: Counter[str] = Counter()
    for index, (response, names) in enumerate(zip(responses, ground_truth, strict=True)):
        if isinstance(names, str):
            raise ValueError(f"ground truth of item {index} must be a collection of names")
        try:
            gt = {extractor.canonical(n) for n in names}
        except UnknownObjectError as err:
            raise UnknownObjectError(
                err.name, f"ground truth of item {index}: unknown object {err.name!r}"
            ) from err
        mentioned = extractor.objects(response)
        hallucinated = [obj for obj in mentioned if obj not in gt]
        n_mentions += len(mentioned)
        n_hall += len(hallucinated)
        by_object.update(hallucinated)
        n_with += bool(mentioned)
        n_bad += bool(hallucinated)
        n_gt += len(gt)
        n_hit += len(gt.intersection(mentioned))
    return ObjectHalBenchResult(
        response_hallucination_rate=ratio(n_bad, n_with),
        mention_hallucination_rate=ratio(n_hall, n_mentions),
        object_recall=ratio(n_hit, n_gt),
        chair_s_all=ratio(n_bad, len(responses)),
        n_responses=len(responses),
        n_responses_with_mentions=n_with,
        n_hallucinated_responses=n_bad,
        n_mentions=n_mentions,
        n_hallucinated_mentions=n_hall,
        n_gt_objects=n_gt,
        n_gt_mentioned=n_hit,
        hallucinated_by_object=dict(sorted(by_object.items())),
    )
