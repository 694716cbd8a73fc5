"""Score answers produced anywhere: answer files in the formats the reference scripts read.

``mmrlaif bench score`` reads a model's answers from the file a benchmark's own evaluation
script reads, and scores them with the same code as the pipeline's evaluations, so a model run
outside the pipeline (vLLM, lmms-eval) is compared in one command, and so is a reference
script's figure with ours on the same answers:

* ``pope``: POPE's answer file (``evaluate.py --ans-file``): JSON lines, in the order of the
  split's question file, each with ``answer`` (POPE) or ``text`` (LLaVA's variant) and optionally
  ``question_id`` (checked against the question file line by line);
* ``amber``: AMBER's ``inference.py`` input: a JSON array of ``{"id", "response"}``, each ``id``
  an AMBER query id;
* ``object_halbench``: RLAIF-V's ``eval_gpt_obj_halbench.py`` answer file: JSON lines with
  ``image_id``, ``question`` (or ``prompt``) and ``answer`` (or ``text``; ``Assistant:`` removed
  and stripped, as the script does);
* ``chair``: Rohrbach's caption file (``utils/chair.py --cap_file``): a JSON object whose
  ``imgToEval`` maps ids to ``{"image_id", "caption"}`` records; a JSON array or JSON lines of
  such records is read too;
* ``mmhal``: MMHal-Bench's ``response_template.json`` with every record's ``model_answer``
  filled in (rated by a judge behind an OpenAI-compatible endpoint).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrlaif.evaluation.hallucination.amber import load_amber
from mmrlaif.evaluation.hallucination.amber_metrics import score_amber_reference
from mmrlaif.evaluation.hallucination.chair import ChairVocabulary, chair_metrics
from mmrlaif.evaluation.hallucination.coco import load_coco_ground_truth
from mmrlaif.evaluation.hallucination.common import (
    BenchmarkFormatError,
    DataRoot,
    load_json,
    load_records,
)
from mmrlaif.evaluation.hallucination.mmhal import MMHalJudge, load_mmhal, score_mmhal
from mmrlaif.evaluation.hallucination.nlp import DEFAULT_SPACY_MODEL, ReferenceNlp, reference_marks
from mmrlaif.evaluation.hallucination.object_halbench import (
    object_halbench_headline,
)
from mmrlaif.evaluation.hallucination.object_halbench_llm import (
    DEFAULT_EXTRACTOR_SPACY_MODEL,
    LLMObjectExtractor,
    score_object_halbench,
)
from mmrlaif.evaluation.hallucination.pope import POPE_FILE_PATTERN, load_pope_split, score_pope

logger = logging.getLogger(__name__)

#: The benchmarks whose answer files can be scored.
SCORABLE: tuple[str, ...] = ("pope", "amber", "object_halbench", "chair", "mmhal")


@dataclass(frozen=True)
class ScoredFile:
    """Figures of one answer file.

    Attributes:
        benchmark: The benchmark.
        headline: Flat figures (fractions, ``mmhal_score`` 0-6).
        result: The full result (JSON data).
        n_answers: Answers scored.
    """

    benchmark: str
    headline: dict[str, float]
    result: dict[str, Any]
    n_answers: int

    def to_dict(self) -> dict[str, Any]:
        """JSON data."""
        return {
            "benchmark": self.benchmark,
            "n_answers": self.n_answers,
            "headline": self.headline,
            "result": self.result,
        }


def _records(path: Path, benchmark: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, record) of an answers file, every record an object.

    JSON lines or a JSON array, as the benchmarks' own files
    (:func:`~mmrlaif.evaluation.hallucination.common.load_records`).
    """
    records = load_records(DataRoot(path.parent, benchmark), path.name)
    for label, record in records:
        if not isinstance(record, dict):
            raise BenchmarkFormatError(path, label, "expected a JSON object")
    if not records:
        raise BenchmarkFormatError(path, None, "no answers")
    return records


def _text(path: Path, label: str, record: dict[str, Any], keys: Sequence[str]) -> str:
    for key in keys:
        if key in record:
            if not isinstance(record[key], str):
                raise BenchmarkFormatError(path, label, f"field {key!r} must be a string")
            return record[key]
    raise BenchmarkFormatError(path, label, f"no {' or '.join(repr(k) for k in keys)} field")


def score_pope_file(
    root: DataRoot, answers: Path, split: str, answer_rule: str = "reference"
) -> ScoredFile:
    """POPE: an answer file against the split's question file, in order."""
    items = load_pope_split(root, POPE_FILE_PATTERN.format(split=split))
    records = _records(answers, "pope")
    if len(records) != len(items):
        raise BenchmarkFormatError(
            answers, None, f"{len(records)} answers for {len(items)} {split} questions"
        )
    texts = []
    for (label, record), item in zip(records, items, strict=True):
        if "question_id" in record and record["question_id"] != item.question_id:
            raise BenchmarkFormatError(
                answers,
                label,
                f"question_id {record['question_id']!r} where the {split} file has "
                f"{item.question_id!r}",
            )
        texts.append(_text(answers, label, record, ("answer", "text")))
    result = score_pope(items, texts, answer_rule)
    figures = ("accuracy", "precision", "recall", "f1", "yes_ratio")
    headline = {f"pope_{split}_{k}": float(getattr(result, k)) for k in figures}
    data = result.to_dict() | reference_marks(None, answer_rule)
    return ScoredFile("pope", headline, data, len(texts))


def score_amber_file(
    root: DataRoot,
    answers: Path,
    answer_rule: str = "reference",
    spacy_model: str | None = DEFAULT_SPACY_MODEL,
) -> ScoredFile:
    """AMBER: ``{"id", "response"}`` records against the annotations, by id."""
    data = load_amber(root)
    by_id = {q.id: q for q in data.queries}
    queries, responses = [], []
    for label, record in _records(answers, "amber"):
        qid = record.get("id")
        if isinstance(qid, bool) or not isinstance(qid, int) or qid not in by_id:
            raise BenchmarkFormatError(answers, label, f"id {qid!r} is not an AMBER query id")
        queries.append(by_id[qid])
        responses.append(_text(answers, label, record, ("response",)))
    result, marks = score_amber_reference(data, queries, responses, answer_rule, spacy_model)
    headline = {f"amber_{k}": float(v) for k, v in result.headline().items()}
    return ScoredFile("amber", headline, result.to_dict() | marks, len(responses))


def _image_ids(answers: Path, records: list[tuple[str, dict[str, Any]]]) -> list[int]:
    ids = []
    for label, record in records:
        image_id = record.get("image_id")
        try:
            ids.append(int(image_id))
        except (TypeError, ValueError) as exc:
            raise BenchmarkFormatError(
                answers, label, f"image_id {image_id!r} is not a COCO image id"
            ) from exc
    return ids


def score_object_halbench_file(
    root: DataRoot,
    answers: Path,
    extractor: LLMObjectExtractor | None = None,
    spacy_model: str | None = DEFAULT_EXTRACTOR_SPACY_MODEL,
) -> ScoredFile:
    """Object HalBench: answers with their COCO ``image_id`` against CHAIR's ground truth, by
    the lexicon path, or by the GPT path when an LLM ``extractor`` is given."""
    records = _records(answers, "object_halbench")
    image_ids = _image_ids(answers, records)
    questions, texts = [], []
    for label, record in records:
        questions.append(_text(answers, label, record, ("question", "prompt")))
        texts.append(_text(answers, label, record, ("text", "answer")))
    vocabulary = ChairVocabulary.load(root, "rlaifv")
    nlp = ReferenceNlp(spacy_model=spacy_model if extractor else None)
    truth = load_coco_ground_truth(root, set(image_ids), vocabulary, nlp)
    names = [f"{answers.name} {label}" for label, _ in records]
    result, _, data = score_object_halbench(
        questions, texts, [truth[i] for i in image_ids], vocabulary, nlp, extractor, names
    )
    headline = {
        f"object_halbench_{k}": float(v) for k, v in object_halbench_headline(result).items()
    }
    return ScoredFile("object_halbench", headline, data, len(texts))


def _caption_records(answers: Path) -> list[tuple[str, dict[str, Any]]]:
    root = DataRoot(answers.parent, "chair")
    try:
        data = load_json(root, answers.name)
    except BenchmarkFormatError:
        data = None  # JSON lines
    if not isinstance(data, dict) or "imgToEval" not in data:
        return _records(answers, "chair")  # a JSON array or JSON lines
    if not isinstance(data["imgToEval"], dict):
        raise BenchmarkFormatError(answers, None, "a JSON object needs an 'imgToEval' mapping")
    records = [(f"imgToEval[{k!r}]", v) for k, v in data["imgToEval"].items()]
    for label, record in records:
        if not isinstance(record, dict):
            raise BenchmarkFormatError(answers, label, "expected a JSON object")
    if not records:
        raise BenchmarkFormatError(answers, None, "no answers")
    return records


def score_chair_file(root: DataRoot, answers: Path) -> ScoredFile:
    """CHAIR (Rohrbach): captions with their COCO ``image_id``, ``synonyms.txt`` from ``root``."""
    records = _caption_records(answers)
    image_ids = _image_ids(answers, records)
    captions = [_text(answers, label, record, ("caption",)) for label, record in records]
    vocabulary = ChairVocabulary.load(root, "rohrbach")
    nlp = ReferenceNlp(spacy_model=None)
    truth = load_coco_ground_truth(root, set(image_ids), vocabulary, nlp)
    result = chair_metrics(captions, [truth[i] for i in image_ids], vocabulary, nlp)
    headline = {"chair_s": result.chair_s, "chair_i": result.chair_i}
    data = result.to_dict() | reference_marks(nlp)
    return ScoredFile("chair", headline, data, len(captions))


def score_mmhal_file(answers: Path, judge: MMHalJudge) -> ScoredFile:
    """MMHal-Bench: a filled-in ``response_template.json`` rated by the judge."""
    items = load_mmhal(DataRoot(answers.parent, "mmhal"), answers.name)
    texts = [
        _text(answers, f"record {i}", record, ("model_answer",))
        for i, (_, record) in enumerate(_records(answers, "mmhal"))
    ]
    result, _ = score_mmhal(items, texts, judge)
    headline = {f"mmhal_{k}": float(v) for k, v in result.headline().items()}
    return ScoredFile("mmhal", headline, result.to_dict(), len(texts))
