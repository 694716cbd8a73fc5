"""The ``eval.benchmarks`` section run on a loaded policy (the evaluate step, ``mmrlaif bench``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from transformers import PreTrainedModel, ProcessorMixin

from mmrlaif.config import BenchmarksConfig
from mmrlaif.evaluation.hallucination import BenchmarkOptions, MMHalJudge, run_benchmarks
from mmrlaif.evaluation.hallucination.object_halbench_llm import LLMObjectExtractor
from mmrlaif.models.generate import generate_answers
from mmrlaif.models.openai_client import OpenAIClient

logger = logging.getLogger(__name__)


def run_benchmarks_on_policy(
    cfg: BenchmarksConfig,
    model: PreTrainedModel,
    processor: ProcessorMixin,
    out_dir: str | Path | None,
    *,
    names: Sequence[str] | None = None,
    data: Mapping[str, str | Path] | None = None,
    limit: int | None = None,
    skip: Mapping[str, int] | None = None,
) -> tuple[dict[str, float], dict[str, list[str]]]:
    """Run ``cfg.run`` (or ``names``) on the policy; writes ``benchmarks.json`` and the answers
    under ``out_dir`` (``None``: nothing written).

    Args:
        cfg: Generation budget, batch size, splits and the judge.
        model: The policy.
        processor: Its processor.
        out_dir: Where the report and answers go.
        names: The benchmarks to run (default ``cfg.run``).
        data: Benchmark -> data root (default ``cfg.data``).
        limit: Items per benchmark (default ``cfg.limit``).
        skip: Benchmark -> items left out at the head (the selection's held-out slice).

    Returns:
        The benchmarks' headline figures (``{}`` when none is configured), and per benchmark
        whose figures are not the reference script's, why
        (:meth:`~mmrlaif.evaluation.hallucination.BenchmarkReport.notes`).

    Raises:
        ConfigError: A benchmark's data is missing (naming the benchmark and the path).
        BenchmarkFormatError: A benchmark file is malformed (naming file and record).
    """
    names = tuple(cfg.run if names is None else names)
    if not names:
        return {}, {}

    def answer(batch):
        images, prompts = [i for i, _ in batch], [p for _, p in batch]
        return generate_answers(
            model, processor, images, prompts, cfg.max_new_tokens, cfg.batch_size
        )

    extractor = None
    if "object_halbench" in names and cfg.objhal_extractor == "llm":
        client = OpenAIClient(cfg.objhal_extractor_endpoint, cfg.objhal_extractor_api_key_env)
        extractor = LLMObjectExtractor(client, cfg.objhal_extractor_model)
    judge = None
    if "mmhal" in names:
        client = OpenAIClient(cfg.judge_endpoint, cfg.judge_api_key_env)
        judge = MMHalJudge(client, cfg.judge_model)
    options = BenchmarkOptions(
        batch_size=cfg.batch_size,
        limit=cfg.limit if limit is None else limit,
        skip=dict(skip or {}),
        pope_splits=cfg.pope_splits,
        pope_answer_rule=cfg.pope_answer_rule,
        amber_query_file=cfg.amber_query_file,
        amber_answer_rule=cfg.amber_answer_rule,
        spacy_model=cfg.spacy_model,
        objhal_extractor=cfg.objhal_extractor,
        objhal_spacy_model=cfg.objhal_spacy_model,
    )
    report = run_benchmarks(
        names,
        data or cfg.data,
        answer,
        judge=judge,
        object_extractor=extractor,
        out_dir=out_dir,
        options=options,
    )
    logger.info("benchmarks %s: %s", ", ".join(names), report.headline)
    for name, why in report.notes().items():
        logger.warning("%s figures are not the reference script's: %s", name, "; ".join(why))
    return dict(report.headline), report.notes()
