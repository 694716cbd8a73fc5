"""MMHal-Bench (Sun et al., 2023, LLaVA-RLHF): 96 questions judged 0-6 by an LLM.

``response_template.json`` is a JSON array of records with ``question_type``,
``question_topic``, ``image_id``, ``image_src`` (the image's URL; the local copy is
``images/<file name of image_src>`` under the data root), ``image_content`` (a list of object
names), ``question``, ``gt_answer`` and ``model_answer`` (filled in by the model under test).

Scoring is MMHal-Bench's ``eval_gpt4.py``: a judge model behind an OpenAI-compatible chat
endpoint (greedy, ``temperature`` 0) gets the image contents, the question, the human answer and
the model's answer, and rates the answer 0-6 (:data:`MMHAL_JUDGE_TEMPLATE`). Its reply is read
by :func:`parse_mmhal_rating`: the rating is N when exactly one of ``rating: 0`` ...
``rating: 6`` occurs in the lower-cased reply, else 0. Figures: score = mean rating;
hallucination rate = share of ratings below 3; the mean rating per question type.

The judge prompt is MMHal's own template, word for word (``data/mmhal_judge_template.txt``);
another can be passed as ``template`` (four ``{}`` slots in the same order).
"""

from __future__ import annotations

import logging
import string
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlparse

from mmrlaif.evaluation.hallucination.common import (
    BenchmarkFormatError,
    DataRoot,
    Fields,
    Query,
    load_records,
)
from mmrlaif.evaluation.metrics import ratio
from mmrlaif.models.openai_client import EndpointError, OpenAIClient

logger = logging.getLogger(__name__)

MMHAL_FILE = "response_template.json"
MMHAL_IMAGE_DIR = "images"

#: MMHal-Bench's judge prompt, verbatim (``eval_gpt4.py``, also RLAIF-V's ``eval_gpt_mmhal.py``,
#: typos included); four ``{}`` slots: image contents, question, human answer, model answer.
MMHAL_JUDGE_TEMPLATE = (
    resources.files(__package__).joinpath("data/mmhal_judge_template.txt").read_text("utf-8")
)


@dataclass(frozen=True)
class MMHalItem:
    """One MMHal-Bench question (a record of ``response_template.json``)."""

    index: int
    question_type: str
    question_topic: str
    image_id: str
    image_src: str
    image_content: tuple[str, ...]
    question: str
    gt_answer: str

    @property
    def image_file(self) -> str:
        """The image's file name: the last path segment of ``image_src``."""
        return urlparse(self.image_src).path.rsplit("/", 1)[-1]

    def query(self, image_dir: str = MMHAL_IMAGE_DIR) -> Query:
        """The model query; the image is ``<image_dir>/<image_file>``."""
        return Query(
            item=f"mmhal/{self.index} ({self.image_id})",
            prompt=self.question,
            image_path=f"{image_dir}/{self.image_file}",
        )


def load_mmhal(root: DataRoot, rel: str = MMHAL_FILE) -> list[MMHalItem]:
    """Read MMHal-Bench's ``response_template.json``.

    Raises:
        BenchmarkDataError: If the file does not exist.
        BenchmarkFormatError: Naming file and record when a field is missing or mistyped (the
            ``model_answer`` field is not read), ``image_src`` has no file name, or the file has
            no records.
    """
    file = root.path(rel)
    items = []
    for index, (label, record) in enumerate(load_records(root, rel)):
        fields = Fields(file, label, record, id_key="image_id")
        item = MMHalItem(
            index=index,
            question_type=fields.string("question_type"),
            question_topic=fields.string("question_topic"),
            image_id=fields.string("image_id"),
            image_src=fields.string("image_src"),
            image_content=fields.strings("image_content"),
            question=fields.string("question"),
            gt_answer=fields.string("gt_answer"),
        )
        if not item.image_file:
            raise fields.error(f"field 'image_src' has no file name: {item.image_src!r}")
        items.append(item)
    if not items:
        raise BenchmarkFormatError(file, None, "no records")
    if len(items) != 96:
        logger.warning("%s has %d records; MMHal-Bench has 96", file, len(items))
    return items


def parse_mmhal_rating(reply: str) -> int | None:
    """MMHal's rule: N when exactly one of ``rating: 0`` ... ``rating: 6`` is in the reply.

    The reply is lower-cased and searched for each of the seven strings; the same rating twice
    still counts as one. Returns ``None`` when none or several different ratings occur (MMHal
    then scores 0: see :func:`mmhal_metrics`).
    """
    text = reply.lower()
    found = [s for s in range(7) if f"rating: {s}" in text]
    return found[0] if len(found) == 1 else None


class MMHalJudge:
    """The MMHal judge: a chat model behind an OpenAI-compatible endpoint.

    Args:
        client: The API client (``<base_url>/chat/completions`` is called).
        model: The judge model's name on that server (MMHal used ``gpt-4-0314``).
        template: The prompt, with four ``{}`` slots: image contents (comma-separated), question,
            human answer, model answer.
        max_tokens: Reply budget; ``None`` leaves it to the server.

    Raises:
        ValueError: If ``template`` does not have exactly four positional ``{}`` slots.
    """

    def __init__(
        self,
        client: OpenAIClient,
        model: str,
        template: str = MMHAL_JUDGE_TEMPLATE,
        max_tokens: int | None = None,
    ) -> None:
        slots = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        if slots != ["", "", "", ""]:
            raise ValueError(f"judge template needs exactly four '{{}}' slots, found {slots}")
        self.client = client
        self.model = model
        self.template = template
        self.max_tokens = max_tokens

    def __repr__(self) -> str:
        return f"MMHalJudge({self.client!r}, model={self.model!r})"

    def prompt(self, item: MMHalItem, answer: str) -> str:
        """The judge prompt for one answer."""
        return self.template.format(
            ", ".join(item.image_content), item.question, item.gt_answer, answer
        )

    def __call__(self, item: MMHalItem, answer: str) -> str:
        """The judge's reply text for one answer.

        Raises:
            EndpointError: If the request fails for good or the reply holds no message text.
        """
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": self.prompt(item, answer)}],
            "temperature": 0.0,
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        what = f"the MMHal judgement of question {item.index} by {self.model!r}"
        reply = self.client.post("/chat/completions", body, what)
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise EndpointError(f"no choices[0].message.content for {what}: {reply!r}") from exc
        if not isinstance(content, str):
            raise EndpointError(f"choices[0].message.content is not text for {what}")
        return content


@dataclass(frozen=True)
class MMHalResult:
    """MMHal-Bench figures.

    Attributes:
        score: Mean rating (0-6).
        hallucination_rate: Share of ratings below 3.
        score_by_type: Question type -> mean rating, sorted by type.
        n: Answers rated.
        n_unparsed: Judge replies with no or several ratings (scored 0, as MMHal does).
        ratings: Every answer's rating, in item order.
    """

    score: float
    hallucination_rate: float
    score_by_type: dict[str, float]
    n: int
    n_unparsed: int
    ratings: tuple[int, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-serialisable data."""
        data = asdict(self)
        data["ratings"] = list(self.ratings)
        return data

    def headline(self) -> dict[str, float]:
        """Score and hallucination rate."""
        return {"score": self.score, "hallucination_rate": self.hallucination_rate}


def mmhal_metrics(ratings: Sequence[int | None], question_types: Sequence[str]) -> MMHalResult:
    """MMHal's figures from parsed ratings (``None`` = unparsed, scored 0).

    Per-type scores group by each item's ``question_type``; MMHal's script groups by position
    (``i % 8``), which is the same on its file, where the 8 types repeat in order.

    Raises:
        ValueError: If the lengths differ or a rating is outside 0-6.
    """
    if len(ratings) != len(question_types):
        raise ValueError(f"{len(ratings)} ratings but {len(question_types)} question types")
    scores = []
    for index, rating in enumerate(ratings):
        if rating is not None and not 0 <= rating <= 6:
            raise ValueError(f"rating {rating} of item {index} is outside 0-6")
        scores.append(0 if rating is None else rating)
    by_type: dict[str, list[int]] = defaultdict(list)
    for kind, score in zip(question_types, scores, strict=True):
        by_type[kind].append(score)
    return MMHalResult(
        score=ratio(sum(scores), len(scores)),
        hallucination_rate=ratio(sum(s < 3 for s in scores), len(scores)),
        score_by_type={k: sum(v) / len(v) for k, v in sorted(by_type.items())},
        n=len(scores),
        n_unparsed=sum(r is None for r in ratings),
        ratings=tuple(scores),
    )


def score_mmhal(
    items: Sequence[MMHalItem], answers: Sequence[str], judge: MMHalJudge
) -> tuple[MMHalResult, list[str]]:
    """Have the judge rate every answer, then compute MMHal's figures.

    Returns:
        The figures and the judge's replies (item order).

    Raises:
        ValueError: If the lengths differ.
        EndpointError: If a judge request fails for good (naming the question).
    """
    if len(items) != len(answers):
        raise ValueError(f"{len(items)} MMHal questions but {len(answers)} answers")
    replies = [judge(item, answer) for item, answer in zip(items, answers, strict=True)]
    ratings = [parse_mmhal_rating(r) for r in replies]
    for item, reply, rating in zip(items, replies, ratings, strict=True):
        if rating is None:
            logger.warning(
                "MMHal question %d: no single rating in judge reply %r", item.index, reply
            )
    return mmhal_metrics(ratings, [i.question_type for i in items]), replies
