"""The ``mmrlaif`` command."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from mmrlaif.config import Config, ConfigError, load_config

logger = logging.getLogger("mmrlaif")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mmrlaif`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        cfg = load_config(args.config, _overrides(args.set))
        return int(args.func(cfg, args) or 0)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"mmrlaif: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmrlaif", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(required=True, dest="command")

    def add(name: str, func, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("--config", required=True, help="YAML preset, e.g. configs/tiny_cpu.yaml")
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value by dotted key (repeatable), e.g. sft.max_length=96",
        )
        p.set_defaults(func=func)
        return p

    p = add("world", _cmd_world, "generate the toy world's tables")
    p.add_argument("--out", help="folder (default: <run.output_dir>/world)")
    p = add("sft", _cmd_sft, "supervised fine-tuning of the base policy")
    p.add_argument("--world", help="world folder (default: <run.output_dir>/world)")
    p.add_argument("--out", help="run folder (default: <run.output_dir>/sft)")
    p = add("evaluate", _cmd_evaluate, "hallucination metrics of a model on the eval split")
    p.add_argument("--model", required=True, help="model folder or hub id")
    p.add_argument("--world", help="world folder (default: <run.output_dir>/world)")
    p.add_argument("--out", help="report JSON (default: <run.output_dir>/eval.json)")
    add("demo", _cmd_demo, "world -> base policy (SFT) -> evaluation, printing the figures")
    p = add("run", _cmd_run, "run the configured pipeline here with kfp.local, tracked in MLflow")
    p = add("compile", _cmd_compile, "compile the configured pipeline to KFP YAML")
    p.add_argument("--out", help="YAML path (default: <run.output_dir>/<pipeline>.yaml)")
    return parser


def _cmd_world(cfg: Config, args: argparse.Namespace) -> None:
    from mmrlaif.toyworld import build_world

    out = args.out or Path(cfg.run.output_dir) / "world"
    paths = build_world(cfg.world, out)
    print(f"world written to {paths.root}")


def _cmd_sft(cfg: Config, args: argparse.Namespace) -> None:
    from mmrlaif.toyworld import WorldPaths
    from mmrlaif.training.sft import sft_stage

    world = WorldPaths(Path(args.world or Path(cfg.run.output_dir) / "world"))
    out = args.out or Path(cfg.run.output_dir) / "sft"
    result = sft_stage(cfg.model, cfg.sft, cfg.world.image_size, world.sft, out, cfg.run.seed)
    print(f"base policy saved to {result.model_dir} ({result.seconds:.0f} s)")


def _cmd_evaluate(cfg: Config, args: argparse.Namespace) -> None:
    from mmrlaif.evaluation.evaluate import evaluate_stage
    from mmrlaif.toyworld import WorldPaths

    world = WorldPaths(Path(args.world or Path(cfg.run.output_dir) / "world"))
    out = args.out or Path(cfg.run.output_dir) / "eval.json"
    report = evaluate_stage(cfg.model, cfg.eval, args.model, world.prompts("eval"), world.pope, out)
    _print_figures(report.headline())
    print(f"report written to {out}")


def _cmd_demo(cfg: Config, args: argparse.Namespace) -> None:
    from mmrlaif.evaluation.evaluate import evaluate_stage
    from mmrlaif.toyworld import build_world
    from mmrlaif.training.sft import sft_stage

    root = Path(cfg.run.output_dir)
    start = time.perf_counter()
    world = build_world(cfg.world, root / "world")
    sft = sft_stage(cfg.model, cfg.sft, cfg.world.image_size, world.sft, root / "sft", cfg.run.seed)
    report = evaluate_stage(
        cfg.model,
        cfg.eval,
        sft.model_dir,
        world.prompts("eval"),
        world.pope,
        root / "eval_base.json",
    )
    print(f"\nBase policy on the held-out eval split ({report.chair.n_responses} images):")
    _print_figures(report.headline())
    print(
        f"\nworld: {world.root}\nbase policy: {sft.model_dir}\n"
        f"report: {root / 'eval_base.json'}\nwall time: {time.perf_counter() - start:.0f} s"
    )


def _cmd_run(cfg: Config, args: argparse.Namespace) -> None:
    import json

    from mmrlaif.config import check_local_paths
    from mmrlaif.pipelines.build import run_local
    from mmrlaif.tracking import open_ui_command
    from mmrlaif.tracking.steps import tracking_uri

    check_local_paths(cfg)
    start = time.perf_counter()
    uri = tracking_uri(cfg)
    summary = json.loads(run_local(cfg, uri).read_text())
    print(f"\n{cfg.pipeline.method} pipeline, {cfg.pipeline.iterations} iteration(s):")
    _print_iterations(summary["iterations"])
    print(
        f"\nwall time: {time.perf_counter() - start:.0f} s"
        f"\nMLflow run {summary['run_id']} in {uri}\nlook at it with: {open_ui_command(uri)}"
    )


def _cmd_compile(cfg: Config, args: argparse.Namespace) -> None:
    from mmrlaif.pipelines import compile_pipeline

    name = "rlaif_v" if cfg.pipeline.method == "rlaifv" else "povid"
    out = args.out or Path(cfg.run.output_dir) / f"{name}.yaml"
    print(f"pipeline written to {compile_pipeline(cfg, out)}")


def _print_iterations(entries: list[dict]) -> None:
    keys = ("chair_i", "chair_s", "cover", "pope_adversarial_accuracy")
    print(f"  {'iteration':<10}" + "".join(f"{k:>27}" for k in keys) + f"{'pairs':>7}  kept")
    base = entries[0]["headline"]
    for e in entries:
        h = e["headline"]
        cells = ""
        for k in keys:
            rel = f"({(h[k] - base[k]) / base[k]:+.0%})" if base.get(k) else ""
            cells += f"{h.get(k, float('nan')):>19.4f} {rel:>7}"
        kept = {True: "new", False: "incumbent", None: "-"}[e.get("kept_new")]
        pairs = "-" if e.get("pairs") is None else str(e["pairs"])
        print(f"  {e['iteration']:<10}{cells}{pairs:>7}  {kept}")
        if e.get("skipped_reason"):
            print(f"  {'':<10}skipped: {e['skipped_reason']}")


def _print_figures(figures: dict[str, float]) -> None:
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"  {key:<{width}}  {value:8.4f}")


def _overrides(pairs: Sequence[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects KEY=VALUE, got {pair!r}")
        out[key] = yaml.safe_load(value)
    return out


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_warning()
    hf_logging.disable_progress_bar()


if __name__ == "__main__":
    sys.exit(main())
