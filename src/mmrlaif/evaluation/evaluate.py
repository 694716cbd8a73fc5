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

from mmrlaif import artifacts
from mmrlaif.config import Config, EvalConfig, ModelConfig
from mmrlaif.evaluation.lexicon import Lexicon
from mmrlaif.evaluation.metrics import (
    ObjectHalResult,
    PopeResult,
    headline_of,
    object_hallucination,
    pope_from_answers,
)
from mmrlaif.io import cell_to_image, read_rows, write_json
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


def benchmark_data(cfg: Config, world_dir: str | Path) -> dict[str, str]:
    """``eval.benchmarks.data`` with ``toyworld`` resolved to the world's AMBER-layout export."""
    from mmrlaif.config import TOYWORLD_DATA
    from mmrlaif.toyworld import WorldPaths

    amber = str(WorldPaths(Path(world_dir)).amber)
    return {k: amber if v == TOYWORLD_DATA else v for k, v in cfg.eval.benchmarks.data.items()}


def candidate_names(policy_run: str | Path) -> list[str]:
    """A DPO run's candidates in training order: its kept checkpoints, then ``final``."""
    from mmrlaif.evaluation.select import CANDIDATES_SUBDIR, FINAL

    folder = Path(policy_run) / CANDIDATES_SUBDIR
    steps = sorted(
        (p.name for p in folder.glob("step-*") if p.is_dir()) if folder.is_dir() else [],
        key=lambda name: int(name.removeprefix("step-")),
    )
    return [*steps, FINAL]


def selection_figures(
    cfg: Config,
    model_dir: Path,
    loaded: tuple[PreTrainedModel, ProcessorMixin],
    val_prompts: Path,
    data: Mapping[str, str],
    out_dir: Path,
) -> tuple[dict[str, float], EvalReport | None]:
    """The figures ``pipeline.select_metric`` reads for one model, written under ``out_dir``:
    its benchmark's held-out slice (the first ``pipeline.select_items`` items), else the toy
    validation split (whose report is returned too, so that it need not be computed again)."""
    from mmrlaif.config import selection_benchmark
    from mmrlaif.evaluation.field import run_field_benchmarks

    name = selection_benchmark(cfg.pipeline.select_metric)
    if name is None:
        report = evaluate_stage(
            cfg.model,
            cfg.eval,
            model_dir,
            val_prompts,
            None,
            out_dir / artifacts.VAL_REPORT,
            loaded,
        )
        figures = {k: float(v) for k, v in report.objects.to_dict().items() if _is_number(v)}
        return figures, report
    figures, _ = run_field_benchmarks(  # a non-reference figure is logged as such there
        cfg.eval.benchmarks,
        *loaded,
        out_dir,
        names=(name,),
        data={name: data[name]},
        limit=cfg.pipeline.select_items,
    )
    return figures, None


def evaluate_step(
    cfg: Config, policy_run: str | Path, world_dir: str | Path, out_dir: str | Path
) -> tuple[EvalReport, EvalReport]:
    """Evaluate a policy artifact: pick its best candidate, then report it.

    The candidates are the DPO run's kept checkpoints (``pipeline.select_every``) and its final
    model; each is scored on the selection figures (:func:`selection_figures`), written with
    the best one's name to ``select.json``. The best is then evaluated on the held-out eval
    split (with POPE) and on validation (``eval.json``, ``val.json``), and on the field's
    benchmarks (``eval.benchmarks.run``; a benchmark the selection uses leaves its selection
    slice out). ``data.json`` records what the figures were measured on.

    Returns:
        The eval-split report and the validation report of the best candidate.
    """
    from mmrlaif.config import selection_benchmark
    from mmrlaif.evaluation.select import (
        SELECT_REPORT,
        best_candidate,
        candidate_model,
    )
    from mmrlaif.io.hashes import file_sha256
    from mmrlaif.toyworld import WorldPaths

    world = WorldPaths(Path(world_dir))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = benchmark_data(cfg, world_dir)
    metric = cfg.pipeline.select_metric
    bench = selection_benchmark(metric)
    val_reports: dict[str, EvalReport | None] = {}
    figures: dict[str, dict[str, float]] = {}
    loaded: dict[str, tuple[PreTrainedModel, ProcessorMixin]] = {}
    names = candidate_names(policy_run)
    for name in names:
        model = candidate_model(policy_run, name)
        loaded = {name: _load(cfg, model)}  # one model in memory at a time
        figures[name], val_reports[name] = selection_figures(
            cfg, model, loaded[name], world.prompts("val"), data, out_dir / "select" / name
        )
        logger.info("selection figures of %s: %s", name, figures[name])
    best = best_candidate(metric, figures) if len(names) > 1 else names[-1]
    selection = {"metric": metric, "benchmark": bench, "figures": figures, "best": best}
    if bench is not None:
        selection["items"] = cfg.pipeline.select_items
    write_json(selection, out_dir / SELECT_REPORT)
    model = candidate_model(policy_run, best)
    if best not in loaded:
        loaded = {best: _load(cfg, model)}
    held_out = evaluate_stage(
        cfg.model,
        cfg.eval,
        model,
        world.prompts("eval"),
        world.pope,
        out_dir / artifacts.EVAL_REPORT,
        loaded[best],
    )
    validation = val_reports.get(best)
    if validation is not None:
        write_json(validation.to_dict(), out_dir / artifacts.VAL_REPORT)
    else:
        validation = evaluate_stage(
            cfg.model,
            cfg.eval,
            model,
            world.prompts("val"),
            None,
            out_dir / artifacts.VAL_REPORT,
            loaded[best],
        )
    if cfg.eval.benchmarks.run:  # the field's benchmarks, on the same loaded policy
        from mmrlaif.evaluation.field import run_field_benchmarks

        skip = {bench: cfg.pipeline.select_items} if bench else {}
        bench_figures, notes = run_field_benchmarks(
            cfg.eval.benchmarks, *loaded[best], out_dir / "benchmarks", data=data, skip=skip
        )
        held_out = dataclasses.replace(held_out, benchmarks=bench_figures, benchmark_notes=notes)
        write_json(held_out.to_dict(), out_dir / artifacts.EVAL_REPORT)
    # what the figures were measured on, so two reports can be told comparable or not
    hashes = {
        "eval_sha": file_sha256(world.prompts("eval")),
        "val_sha": file_sha256(world.prompts("val")),
    }
    if world.pope.is_file():
        hashes["pope_sha"] = file_sha256(world.pope)
    write_json(hashes, out_dir / artifacts.DATA_REPORT)
    return held_out, validation


def _load(cfg: Config, model: Path) -> tuple[PreTrainedModel, ProcessorMixin]:
    return load_vlm(model, cfg.model.dtype, cfg.model.trust_remote_code, family=cfg.model.family)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
