"""One entry point for the hallucination benchmarks: :func:`run_benchmarks`.

It reads each requested benchmark's data (checking all of it, images included, before the model
is asked anything), asks ``answer_fn`` for the model's answers in batches of (image, prompt),
scores them as the benchmark defines, and returns - and optionally writes - one report.

Data roots (local folders or ``s3://`` prefixes; the file names are defaults of
:class:`BenchmarkOptions`):

* ``pope``: ``coco_pope_{random,popular,adversarial}.json`` and ``images/<COCO file name>``;
* ``amber``: AMBER's ``data/`` folder (``query/``, ``annotations.json``, ``relation.json``,
  ``safe_words.txt``) and ``image/AMBER_<n>.jpg``;
* ``object_halbench``: ``obj_halbench_300_with_image.jsonl`` and COCO 2014 annotations
  ``annotations/instances_*.json`` + ``annotations/captions_*.json``;
* ``mmhal``: ``response_template.json`` and ``images/<file name of image_src>``; needs a judge.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrlaif.config.selection import BENCHMARK_NAMES
from mmrlaif.config.strict import ConfigError
from mmrlaif.evaluation.hallucination.amber import AMBER_IMAGE_DIR, AMBER_QUERY_FILE, load_amber
from mmrlaif.evaluation.hallucination.amber_metrics import score_amber_reference
from mmrlaif.evaluation.hallucination.chair import RLAIFV_SYNONYMS_FILE, ChairVocabulary
from mmrlaif.evaluation.hallucination.coco import load_coco_ground_truth
from mmrlaif.evaluation.hallucination.common import (
    AnswerFn,
    BenchmarkDataError,
    DataRoot,
    Query,
    check_images,
)
from mmrlaif.evaluation.hallucination.mmhal import (
    MMHAL_FILE,
    MMHAL_IMAGE_DIR,
    MMHalJudge,
    load_mmhal,
    score_mmhal,
)
from mmrlaif.evaluation.hallucination.nlp import DEFAULT_SPACY_MODEL, ReferenceNlp, reference_marks
from mmrlaif.evaluation.hallucination.object_halbench import (
    OBJECT_HALBENCH_FILE,
    load_object_halbench_items,
    object_halbench_headline,
)
from mmrlaif.evaluation.hallucination.object_halbench_llm import (
    DEFAULT_EXTRACTOR_SPACY_MODEL,
    LLMObjectExtractor,
    score_object_halbench,
)
from mmrlaif.evaluation.hallucination.pope import (
    POPE_ANSWER_RULES,
    POPE_FILE_PATTERN,
    POPE_SPLITS,
    load_pope,
    score_pope,
)
from mmrlaif.io import s3, write_json

logger = logging.getLogger(__name__)

#: The benchmarks :func:`run_benchmarks` knows (the list the config validates against).
BENCHMARKS: tuple[str, ...] = BENCHMARK_NAMES
#: Name of the report file written to ``out_dir``.
REPORT_FILE = "benchmarks.json"


@dataclass(frozen=True)
class BenchmarkOptions:
    """How to read and run the benchmarks (defaults follow the benchmarks' own layouts).

    Attributes:
        batch_size: (image, prompt) pairs per ``answer_fn`` call.
        limit: Use only the first N items of each benchmark (of each POPE split); ``None``: all.
        skip: Benchmark -> items left out at the head of its file (of each POPE split) before
            ``limit`` applies: the held-out selection slice, which the reports never score.
        pope_splits: POPE negative-sampling splits to run.
        pope_file_pattern: A split's question file under the root, ``{split}`` replaced.
        pope_answer_rule: ``reference`` (POPE's ``evaluate.py``, case-sensitive) or ``lenient``
            (case-insensitive, any punctuation separates words: not POPE's figures; the result
            says ``"reference": false``).
        pope_image_dir: Folder of the COCO images under the root.
        amber_query_file: Query file under ``data/query/`` (``query_all.json``,
            ``query_generative.json``, ``query_discriminative.json``...).
        amber_image_dir: Folder of the AMBER images under the root.
        amber_answer_rule: ``reference`` (AMBER's exact ``"Yes"``/``"No"``) or ``lenient``
            (any answer read POPE-style: not AMBER's figures; the result says
            ``"reference": false``).
        spacy_model: AMBER's similarity model; ``None`` skips the step (marked approximate).
        object_halbench_file: The items file under the root.
        object_halbench_synonyms: RLAIF-V's synonym file under the root.
        objhal_extractor: ``lexicon`` or ``llm`` (needs ``object_extractor`` in
            :func:`run_benchmarks`).
        objhal_spacy_model: spaCy model of the ``llm`` path's post-processing.
        coco_annotation_dir: Folder of the COCO ``instances_*``/``captions_*`` files.
        mmhal_file: The response template under the root.
        mmhal_image_dir: Folder of the MMHal images under the root.
    """

    batch_size: int = 8
    limit: int | None = None
    skip: Mapping[str, int] = field(default_factory=dict)
    pope_splits: tuple[str, ...] = POPE_SPLITS
    pope_file_pattern: str = POPE_FILE_PATTERN
    pope_answer_rule: str = "reference"
    pope_image_dir: str = "images"
    amber_query_file: str = AMBER_QUERY_FILE
    amber_image_dir: str = AMBER_IMAGE_DIR
    amber_answer_rule: str = "reference"
    spacy_model: str | None = DEFAULT_SPACY_MODEL
    object_halbench_file: str = OBJECT_HALBENCH_FILE
    object_halbench_synonyms: str = RLAIFV_SYNONYMS_FILE
    objhal_extractor: str = "lexicon"
    objhal_spacy_model: str | None = DEFAULT_EXTRACTOR_SPACY_MODEL
    coco_annotation_dir: str = "annotations"
    mmhal_file: str = MMHAL_FILE
    mmhal_image_dir: str = MMHAL_IMAGE_DIR

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1 or null, got {self.limit}")
        if any(n < 0 for n in self.skip.values()):
            raise ConfigError(f"skip must be >= 0 per benchmark, got {dict(self.skip)}")
        if not self.pope_splits:
            raise ConfigError("pope_splits must name at least one split")
        if self.pope_answer_rule not in POPE_ANSWER_RULES:
            raise ConfigError(
                f"pope_answer_rule: {self.pope_answer_rule!r} is not one of {POPE_ANSWER_RULES}"
            )
        if self.amber_answer_rule not in POPE_ANSWER_RULES:
            raise ConfigError(
                f"amber_answer_rule: {self.amber_answer_rule!r} is not one of {POPE_ANSWER_RULES}"
            )
        if self.objhal_extractor not in ("lexicon", "llm"):
            raise ConfigError(f"objhal_extractor: {self.objhal_extractor!r} is not lexicon or llm")
        if "{split}" not in self.pope_file_pattern:
            raise ConfigError(f"pope_file_pattern needs '{{split}}': {self.pope_file_pattern!r}")


@dataclass(frozen=True)
class BenchmarkReport:
    """Figures of one :func:`run_benchmarks` call.

    Attributes:
        results: Benchmark -> its full result (JSON data).
        headline: Flat figures, ``<benchmark>_<figure>`` (``pope_random_f1``, ``amber_chair``,
            ``object_halbench_mention_hallucination_rate``, ``mmhal_score``...), all fractions
            except ``mmhal_score`` (0-6).
        seconds: Benchmark -> wall time (answering and scoring).
    """

    results: dict[str, dict[str, Any]]
    headline: dict[str, float]
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-serialisable data."""
        return {"results": self.results, "headline": self.headline, "seconds": self.seconds}

    def notes(self) -> dict[str, list[str]]:
        """Benchmark -> why its figures are not the reference script's (only those that are
        not): a non-reference answer rule, or each fallback for a missing NLTK/spaCy resource."""
        notes = {}
        for name, result in self.results.items():
            if result.get("reference", True):
                continue
            why = list(result.get("approximate") or [])
            if result.get("answer_rule") not in (None, "reference"):
                why.insert(0, f"answer rule {result['answer_rule']!r}, not the reference's")
            notes[name] = why
        return notes


# What scoring returns: full result, headline figures, per-item extras for the answers file.
_Scored = tuple[dict[str, Any], dict[str, float], list[dict[str, Any]] | None]


@dataclass(frozen=True)
class _Task:
    name: str
    root: DataRoot
    queries: list[Query]
    score: Callable[[list[str]], _Scored]


def _head(items: Sequence[Any], opts: BenchmarkOptions, name: str) -> list[Any]:
    rest = items[opts.skip.get(name, 0) :]
    return list(rest[: opts.limit] if opts.limit is not None else rest)


def _prepare_pope(root: DataRoot, opts: BenchmarkOptions) -> _Task:
    splits = {
        split: _head(items, opts, "pope")
        for split, items in load_pope(root, opts.pope_splits, opts.pope_file_pattern).items()
    }
    queries = [
        item.query(split, opts.pope_image_dir) for split, items in splits.items() for item in items
    ]

    def score(answers: list[str]) -> _Scored:
        results, headline, start = {}, {}, 0
        for split, items in splits.items():
            result = score_pope(items, answers[start : start + len(items)], opts.pope_answer_rule)
            start += len(items)
            results[split] = result.to_dict()
            for key in ("accuracy", "precision", "recall", "f1", "yes_ratio"):
                headline[f"{split}_{key}"] = getattr(result, key)
        results.update(reference_marks(None, opts.pope_answer_rule))
        return results, headline, None

    return _Task("pope", root, queries, score)


def _prepare_amber(root: DataRoot, opts: BenchmarkOptions) -> _Task:
    data = load_amber(root, opts.amber_query_file)
    amber_queries = _head(data.queries, opts, "amber")

    def score(answers: list[str]) -> _Scored:
        result, marks = score_amber_reference(
            data, amber_queries, answers, opts.amber_answer_rule, opts.spacy_model
        )
        return result.to_dict() | marks, result.headline(), None

    queries = [q.to_query(opts.amber_image_dir) for q in amber_queries]
    return _Task("amber", root, queries, score)


def _prepare_object_halbench(
    root: DataRoot, opts: BenchmarkOptions, extractor: LLMObjectExtractor | None
) -> _Task:
    if opts.objhal_extractor == "llm" and extractor is None:
        raise ConfigError("objhal_extractor llm needs an object extractor (an LLM endpoint)")
    items = _head(
        load_object_halbench_items(root, opts.object_halbench_file), opts, "object_halbench"
    )
    vocabulary = ChairVocabulary.load(root, "rlaifv", opts.object_halbench_synonyms)
    nlp = ReferenceNlp(spacy_model=opts.objhal_spacy_model)
    truth = load_coco_ground_truth(
        root, {i.image_id for i in items}, vocabulary, nlp, opts.coco_annotation_dir
    )
    ground_truth = [truth[i.image_id] for i in items]

    def score(answers: list[str]) -> _Scored:
        extra = [{"image_id": i.image_id, "gt_objects": sorted(truth[i.image_id])} for i in items]
        result, objects, data = score_object_halbench(
            [i.question for i in items],
            answers,
            ground_truth,
            vocabulary,
            nlp,
            extractor if opts.objhal_extractor == "llm" else None,
            [f"object_halbench/{i.record}" for i in items],
        )
        if objects is not None:
            extra = [e | {"objects": o} for e, o in zip(extra, objects, strict=True)]
        return data, object_halbench_headline(result), extra

    return _Task("object_halbench", root, [i.query() for i in items], score)


def _prepare_mmhal(root: DataRoot, opts: BenchmarkOptions, judge: MMHalJudge | None) -> _Task:
    if judge is None:
        raise ConfigError("benchmark 'mmhal' needs a judge (an MMHalJudge on an LLM endpoint)")
    items = _head(load_mmhal(root, opts.mmhal_file), opts, "mmhal")

    def score(answers: list[str]) -> _Scored:
        result, replies = score_mmhal(items, answers, judge)
        extra = [
            {"question_type": i.question_type, "rating": r, "judge_reply": reply}
            for i, r, reply in zip(items, result.ratings, replies, strict=True)
        ]
        return result.to_dict(), result.headline(), extra

    return _Task("mmhal", root, [i.query(opts.mmhal_image_dir) for i in items], score)


def _answer(task: _Task, answer_fn: AnswerFn, batch_size: int) -> list[str]:
    answers: list[str] = []
    for start in range(0, len(task.queries), batch_size):
        batch = task.queries[start : start + batch_size]
        pairs = [(query.load_image(task.root), query.prompt) for query in batch]
        out = list(answer_fn(pairs))
        if len(out) != len(batch):
            raise ValueError(
                f"answer_fn returned {len(out)} answers for a batch of {len(batch)} "
                f"({batch[0].item} ... {batch[-1].item})"
            )
        for query, answer in zip(batch, out, strict=True):
            if not isinstance(answer, str):
                raise TypeError(f"answer_fn returned {type(answer).__name__} for {query.item}")
        answers += out
        logger.debug("%s: %d/%d answered", task.name, len(answers), len(task.queries))
    return answers


def _join(out_dir: str | Path, name: str) -> str | Path:
    if s3.is_s3(out_dir):
        return f"{str(out_dir).rstrip('/')}/{name}"
    return Path(out_dir) / name


def run_benchmarks(
    names: Sequence[str],
    data_dirs: Mapping[str, str | Path],
    answer_fn: AnswerFn,
    *,
    judge: MMHalJudge | None = None,
    object_extractor: LLMObjectExtractor | None = None,
    out_dir: str | Path | None = None,
    options: BenchmarkOptions | None = None,
) -> BenchmarkReport:
    """Run hallucination benchmarks on a model and collect their figures.

    Every requested benchmark's data is read and checked first (files, records, images); only
    then is ``answer_fn`` called, benchmark by benchmark, in batches. Nothing is drawn at random:
    items are used in file order (the first ``options.limit`` of each).

    Args:
        names: Any of :data:`BENCHMARKS` (``"pope"``, ``"amber"``, ``"object_halbench"``,
            ``"mmhal"``), run in the order given; repeats are ignored.
        data_dirs: Benchmark -> its data root (local folder or ``s3://`` prefix); see the
            module docstring for each layout.
        answer_fn: The model: a batch of (RGB PIL image, prompt) -> one answer string per pair.
        judge: The MMHal-Bench judge; required when ``"mmhal"`` is run.
        object_extractor: The LLM listing Object HalBench answers' objects; required with
            ``options.objhal_extractor == "llm"``.
        out_dir: If given (local folder or ``s3://`` prefix), the report is written to
            ``<out_dir>/benchmarks.json`` and each benchmark's answers (with item ids, prompts
            and per-item extras such as the judge's reply) to ``<out_dir>/answers/<name>.json``.
        options: File names, batch size and limit; defaults when ``None``.

    Returns:
        The report: full results, flat headline figures and timings.

    Raises:
        ConfigError: If ``names`` is empty or holds an unknown benchmark, or ``"mmhal"`` has no
            judge. :class:`BenchmarkDataError` (a ``ConfigError``) names the benchmark and the
            path when a data root, file or image is missing or not configured.
        BenchmarkFormatError: Naming file, record and problem when a benchmark file is malformed.
        ValueError: If ``answer_fn`` returns the wrong number of answers (naming the items).
        EndpointError: If a judge request fails for good.
    """
    opts = options or BenchmarkOptions()
    wanted = list(dict.fromkeys(names))
    if not wanted:
        raise ConfigError(f"no benchmark named (known: {', '.join(BENCHMARKS)})")
    unknown = [n for n in wanted if n not in BENCHMARKS]
    if unknown:
        raise ConfigError(f"unknown benchmark(s) {unknown} (known: {', '.join(BENCHMARKS)})")

    tasks: list[_Task] = []
    for name in wanted:
        if not data_dirs.get(name):
            raise BenchmarkDataError(name, f"data_dirs[{name!r}]", "no data folder configured")
        root = DataRoot(data_dirs[name], name)
        root.check()
        if name == "pope":
            task = _prepare_pope(root, opts)
        elif name == "amber":
            task = _prepare_amber(root, opts)
        elif name == "object_halbench":
            task = _prepare_object_halbench(root, opts, object_extractor)
        else:
            task = _prepare_mmhal(root, opts, judge)
        check_images(root, task.queries)
        logger.info("%s: %d queries from %s", name, len(task.queries), root.location)
        tasks.append(task)

    results: dict[str, dict[str, Any]] = {}
    headline: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for task in tasks:
        start = time.monotonic()
        answers = _answer(task, answer_fn, opts.batch_size)
        result, figures, extras = task.score(answers)
        seconds[task.name] = time.monotonic() - start
        results[task.name] = result
        headline.update({f"{task.name}_{k}": float(v) for k, v in figures.items()})
        logger.info("%s: %s", task.name, figures)
        if out_dir is not None:
            rows = [
                {"item": q.item, "prompt": q.prompt, "answer": a, **(extras[i] if extras else {})}
                for i, (q, a) in enumerate(zip(task.queries, answers, strict=True))
            ]
            write_json(rows, _join(out_dir, f"answers/{task.name}.json"))
    report = BenchmarkReport(results, headline, seconds)
    if out_dir is not None:
        written = write_json(report.to_dict(), _join(out_dir, REPORT_FILE))
        logger.info("wrote benchmark report to %s", written)
    return report
