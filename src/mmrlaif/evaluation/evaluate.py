"""Evaluate a policy on held-out prompts: CHAIR-style description metrics and POPE."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, ProcessorMixin

from mmrlaif.config import EvalConfig, ModelConfig
from mmrlaif.evaluation.metrics import (
    ObjectHalResult,
    PopeResult,
    headline_of,
    object_hallucination,
    pope_from_answers,
)
from mmrlaif.io import cell_to_image, read_rows, write_json
from mmrlaif.lexicon import Lexicon
from mmrlaif.models.generate import generate_answers
from mmrlaif.models.load import load_vlm
from mmrlaif.toyworld.vocab import object_names, partner_of, toy_lexicon

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalReport:
    """Figures of one evaluation.

    Attributes:
        objects: Description metrics (ObjHal, RespHal, Cover) on the eval prompts.
        pope: POPE results per negative-sampling category.
        hallucinated_partner_share: Share of hallucinated mentions that name an absent
            co-occurring partner of an object in the image (the language prior at work).
        examples: A few (prompt_id, response, ground truth) for people to read.
        benchmarks: Headline figures of the field's benchmarks (``eval.benchmarks``), if run.
        benchmark_notes: Benchmark -> why its figures are not its reference script's (a
            lenient answer rule, a missing NLTK/spaCy resource); absent when they are.
    """

    objects: ObjectHalResult
    pope: dict[str, PopeResult]
    hallucinated_partner_share: float
    examples: list[dict[str, Any]] = field(default_factory=list)
    benchmarks: dict[str, float] = field(default_factory=dict)
    benchmark_notes: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        out = {
            "objects": self.objects.to_dict(),
            "pope": {k: v.to_dict() for k, v in self.pope.items()},
            "hallucinated_partner_share": self.hallucinated_partner_share,
            "examples": self.examples,
        }
        if self.benchmarks:
            out["benchmarks"] = self.benchmarks
        if self.benchmark_notes:
            out["benchmark_notes"] = self.benchmark_notes
        return out

    def headline(self) -> dict[str, float]:
        """The flat figures to log and print."""
        return headline_of(self.to_dict())


def partner_share(
    responses: Sequence[str],
    ground_truth: Sequence[Sequence[str]],
    lexicon: Lexicon,
    partners: Mapping[str, str],
) -> float:
    """Share of hallucinated objects that are absent co-occurring partners of present objects."""
    n_hallucinated = 0
    n_partner = 0
    for response, gt in zip(responses, ground_truth, strict=True):
        present = {lexicon.canonical(o) for o in gt}
        for obj in set(lexicon.objects_in(response)) - present:
            n_hallucinated += 1
            n_partner += any(partners.get(p) == obj for p in present)
    return n_partner / n_hallucinated if n_hallucinated else 0.0


def evaluate_policy(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    prompts: Sequence[Mapping[str, Any]],
    pope_rows: Sequence[Mapping[str, Any]],
    lexicon: Lexicon,
    partners: Mapping[str, str],
    cfg: EvalConfig,
) -> EvalReport:
    """Describe each eval image and answer the POPE questions, then score both.

    Args:
        model: The policy.
        processor: Its processor.
        prompts: Rows with ``prompt_id``, ``image``, ``question`` and ground-truth ``objects``.
        pope_rows: Rows with ``question_id``, ``prompt_id``, ``image``, ``question``,
            ``category`` and a boolean ``label``.
        lexicon: Object lexicon for mention extraction.
        partners: Co-occurring partner of each object that has one.
        cfg: Generation budget, batch size, categories and limit.

    Returns:
        The report.
    """
    if cfg.limit is not None:
        keep = {p["prompt_id"] for p in prompts[: cfg.limit]}
        prompts = [p for p in prompts if p["prompt_id"] in keep]
        pope_rows = [r for r in pope_rows if r["prompt_id"] in keep]
    image_of = {p["prompt_id"]: cell_to_image(p["image"], str(p["prompt_id"])) for p in prompts}
    images = [image_of[p["prompt_id"]] for p in prompts]
    responses = generate_answers(
        model,
        processor,
        images,
        [p["question"] for p in prompts],
        cfg.max_new_tokens,
        cfg.batch_size,
        progress_every=5,
    )
    ground_truth = [list(p["objects"]) for p in prompts]
    hal_result = object_hallucination(responses, ground_truth, lexicon)
    pope_results: dict[str, PopeResult] = {}
    counts = Counter(r["category"] for r in pope_rows)
    for category in cfg.pope_categories:
        if not counts[category]:
            raise ValueError(f"no POPE questions of category {category!r} in the eval table")
        rows = [r for r in pope_rows if r["category"] == category]
        answers = generate_answers(
            model,
            processor,
            [
                image_of[r["prompt_id"]]
                if r["prompt_id"] in image_of
                else cell_to_image(r["image"], str(r["question_id"]))
                for r in rows
            ],
            [r["question"] for r in rows],
            max_new_tokens=3,
            batch_size=cfg.batch_size,
        )
        pope_results[category] = pope_from_answers(answers, [bool(r["label"]) for r in rows])
    examples = [
        {"prompt_id": p["prompt_id"], "response": r, "objects": list(p["objects"])}
        for p, r in list(zip(prompts, responses, strict=True))[:8]
    ]
    report = EvalReport(
        hal_result,
        pope_results,
        partner_share(responses, ground_truth, lexicon, partners),
        examples,
    )
    logger.info("evaluation: %s", {k: round(v, 4) for k, v in report.headline().items()})
    return report


def evaluate_stage(
    model_cfg: ModelConfig,
    eval_cfg: EvalConfig,
    model_dir: str | Path,
    prompts_table: str | Path,
    pope_table: str | Path | None,
    report_path: str | Path,
    model_and_processor: tuple[PreTrainedModel, ProcessorMixin] | None = None,
) -> EvalReport:
    """The evaluation stage on the toy world: load the model, evaluate, write the JSON report.

    With ``pope_table=None`` only the descriptions are scored (the validation split). A model
    already loaded can be passed as ``model_and_processor``.
    """
    if model_and_processor is None:
        model_and_processor = load_vlm(
            model_dir, model_cfg.dtype, model_cfg.trust_remote_code, family=model_cfg.family
        )
    if pope_table is None:
        eval_cfg = dataclasses.replace(eval_cfg, pope_categories=())
    partners = {o: p for o in object_names() if (p := partner_of(o))}
    report = evaluate_policy(
        *model_and_processor,
        read_rows(prompts_table),
        read_rows(pope_table) if pope_table is not None else [],
        toy_lexicon(),
        partners,
        eval_cfg,
    )
    write_json(report.to_dict(), report_path)
    return report
