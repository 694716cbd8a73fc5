"""``mmrlaif bench score``: the field's benchmark figures of answers produced anywhere."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmrlaif.cli import AddCommand, CommandError
from mmrlaif.config import Config
from mmrlaif.evaluation.hallucination import MMHalJudge
from mmrlaif.evaluation.hallucination import answer_files as af
from mmrlaif.evaluation.hallucination.common import DataRoot
from mmrlaif.evaluation.hallucination.object_halbench_llm import LLMObjectExtractor
from mmrlaif.models.openai_client import OpenAIClient


def register(add: AddCommand) -> None:
    """Add the ``bench`` command."""
    p = add(
        "bench",
        _cmd_bench,
        "score a benchmark's answer file (the format its reference script reads)",
        config_required=False,
    )
    p.add_argument("action", choices=["score"], help="score: figures of an answer file")
    p.add_argument(
        "--benchmark",
        required=True,
        choices=["pope", "amber", "objhal", "object_halbench", "chair", "mmhal"],
        help="which benchmark (objhal = object_halbench)",
    )
    p.add_argument(
        "--data",
        help="the benchmark's data folder or s3:// prefix (its published layout; not for mmhal)",
    )
    p.add_argument("--answers", required=True, type=Path, help="the answers file")
    p.add_argument("--split", choices=["random", "popular", "adversarial"], help="POPE split")
    p.add_argument(
        "--out", type=Path, help="write the full result as JSON here (figures are printed)"
    )


def _cmd_bench(cfg: Config, args: argparse.Namespace) -> None:
    bench = cfg.eval.benchmarks
    name = "object_halbench" if args.benchmark == "objhal" else args.benchmark
    if name != "mmhal" and not args.data:
        raise CommandError(f"bench score --benchmark {args.benchmark} needs --data")
    root = DataRoot(args.data, name) if args.data else None
    if name == "pope":
        if not args.split:
            raise CommandError("bench score --benchmark pope needs --split")
        scored = af.score_pope_file(root, args.answers, args.split, bench.pope_answer_rule)
    elif name == "amber":
        scored = af.score_amber_file(root, args.answers, bench.amber_answer_rule, bench.spacy_model)
    elif name == "object_halbench":
        extractor = None
        if bench.objhal_extractor == "llm":
            client = OpenAIClient(
                bench.objhal_extractor_endpoint, bench.objhal_extractor_api_key_env
            )
            extractor = LLMObjectExtractor(client, bench.objhal_extractor_model)
        scored = af.score_object_halbench_file(
            root, args.answers, extractor, bench.objhal_spacy_model
        )
    elif name == "chair":
        scored = af.score_chair_file(root, args.answers)
    else:
        if not bench.judge_endpoint:
            raise CommandError("mmhal needs a judge: --set eval.benchmarks.judge_endpoint=URL")
        client = OpenAIClient(bench.judge_endpoint, bench.judge_api_key_env)
        scored = af.score_mmhal_file(args.answers, MMHalJudge(client, bench.judge_model))
    for key, value in scored.headline.items():
        print(f"{key}\t{value:.4f}")
    if not scored.result.get("reference", True):
        why = scored.result.get("approximate") or [f"answer rule {scored.result['answer_rule']}"]
        print(f"NOT the reference script's figures: {'; '.join(why)}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(scored.to_dict(), indent=2))
