"""The field's benchmarks (``eval.benchmarks``) run by the evaluate step on a loaded policy."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import PreTrainedModel, ProcessorMixin

from mmrlaif.config import BenchmarksConfig
from mmrlaif.models.generate import generate_answers

logger = logging.getLogger(__name__)


def run_field_benchmarks(
    cfg: BenchmarksConfig,
    model: PreTrainedModel,
    processor: ProcessorMixin,
    out_dir: str | Path,
) -> dict[str, float]:
    """Run ``cfg.run`` on the policy; writes ``benchmarks.json`` and the answers under
    ``out_dir``.

    Returns:
        The benchmarks' headline figures (``{}`` when none is configured).

    Raises:
        ConfigError: A benchmark's data is missing (naming the benchmark and the path).
        BenchmarkFormatError: A benchmark file is malformed (naming file and record).
    """
    if not cfg.run:
        return {}
    from mmrlaif.evaluation.benchmarks import BenchmarkOptions, MMHalJudge, run_benchmarks
    from mmrlaif.models.openai_client import OpenAIClient

    def answer(batch):
        images, prompts = [i for i, _ in batch], [p for _, p in batch]
        return generate_answers(
            model, processor, images, prompts, cfg.max_new_tokens, cfg.batch_size
        )

    judge = None
    if "mmhal" in cfg.run:
        client = OpenAIClient(cfg.judge_endpoint, cfg.judge_api_key_env)
        judge = MMHalJudge(client, cfg.judge_model)
    options = BenchmarkOptions(
        batch_size=cfg.batch_size,
        limit=cfg.limit,
        pope_splits=cfg.pope_splits,
        amber_query_file=cfg.amber_query_file,
        amber_strict_answers=cfg.amber_strict_answers,
    )
    report = run_benchmarks(
        cfg.run, cfg.data, answer, judge=judge, out_dir=out_dir, options=options
    )
    logger.info("benchmarks %s: %s", ", ".join(cfg.run), report.headline)
    return dict(report.headline)
