"""Local commands: the toy world, SFT, evaluation, the demo and the pipeline via kfp.local."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import time
from pathlib import Path

from mmrlaif.ablation import VARIANTS, AblationError, run_ablation, summarize, variant_config
from mmrlaif.cli import AddCommand, CommandError
from mmrlaif.config import Config, check_local_paths
from mmrlaif.io import read_rows, write_json, write_table
from mmrlaif.pipelines.build import TaskFailedError, run_local
from mmrlaif.preflight import check
from mmrlaif.toyworld import WorldPaths, build_world
from mmrlaif.tracking import open_ui_command
from mmrlaif.tracking.report import find_pipeline_run, write_report
from mmrlaif.tracking.unfinished import close_unfinished_runs
from mmrlaif.tracking.uri import redact_uri, tracking_uri
from mmrlaif.training.validate import check_trainer_args


def register(add: AddCommand) -> None:
    """Add the local commands."""
    p = add("check", _cmd_check, "preflight: find what would fail, before anything runs")
    p.add_argument("--offline", action="store_true", help="skip the tracking server and S3 checks")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per network check")
    p = add("world", _cmd_world, "generate the toy world's tables")
    p.add_argument("--out", help="folder (default: <run.output_dir>/world)")
    p = add("sft", _cmd_sft, "supervised fine-tuning of the base policy")
    p.add_argument("--world", help="world folder (default: <run.output_dir>/world)")
    p.add_argument("--out", help="run folder (default: <run.output_dir>/sft)")
    p = add("evaluate", _cmd_evaluate, "hallucination metrics of a model on the eval split")
    p.add_argument("--model", required=True, help="model folder or hub id")
    p.add_argument("--world", help="world folder (default: <run.output_dir>/world)")
    p.add_argument("--out", help="report JSON (default: <run.output_dir>/eval.json)")
    p = add(
        "best-of-n",
        _cmd_best_of_n,
        "answer each prompt with the best of N samples by the self-feedback reward (guidance)",
    )
    p.add_argument("--policy", required=True, help="the aligned policy: folder or hub id")
    p.add_argument("--reference", required=True, help="the policy it was aligned from")
    p.add_argument("--prompts", help="table of prompt_id, image, question (default: eval split)")
    p.add_argument("--n", type=int, help="samples per prompt (default: sampling.n)")
    p.add_argument("--beta", type=float, help="reward beta (default: dpo.trainer.beta or 0.1)")
    p.add_argument("--out", help="answers table (default: <run.output_dir>/best_of_n.parquet)")
    add("demo", _cmd_demo, "world -> base policy (SFT) -> evaluation, printing the figures")
    p = add("run", _cmd_run, "run the configured pipeline here with kfp.local, tracked in MLflow")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start anew even when the output folder's last run did not finish (by default "
        "it resumes: the tasks it finished are reused)",
    )
    p = add("ablate", _cmd_ablate, "run the pipeline under several variants and seeds, compared")
    p.add_argument(
        "--variants",
        default="iterative,one_shot,self_labeler,dpo_only,povid,rlaifv_povid",
        help=f"comma-separated, of: {', '.join(VARIANTS)}",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--jobs", type=int, default=1, help="runs at a time, each with cpus/jobs threads"
    )
    p.add_argument("--out", help="folder (default: <run.output_dir>/ablation)")
    p = add(
        "report",
        _cmd_report,
        "write the HTML report of a finished run (report.html)",
        config_required=False,  # a run folder is enough
    )
    p.add_argument("run", nargs="?", help="the run's output folder (default: <run.output_dir>)")
    p.add_argument("--out", help="HTML file (default: <RUN>/report.html)")


def _cmd_world(cfg: Config, args: argparse.Namespace) -> None:
    out = args.out or Path(cfg.run.output_dir) / "world"
    paths = build_world(cfg.world, out)
    print(f"world written to {paths.root}")


def _cmd_best_of_n(cfg: Config, args: argparse.Namespace) -> None:

    # lazy: its stage imports torch and transformers; other commands start without them
    from mmrlaif.evaluation.guidance import best_of_n_answers
    from mmrlaif.models.load import load_vlm

    if args.n is not None and args.n < 1:
        raise CommandError(f"--n must be at least 1, got {args.n}")
    prompts_table = args.prompts or WorldPaths(Path(cfg.run.output_dir) / "world").prompts("eval")
    if not Path(prompts_table).exists() and not str(prompts_table).startswith("s3://"):
        raise CommandError(f"no prompts table at {prompts_table} (pass --prompts)")
    load = {"dtype": cfg.model.dtype, "trust_remote_code": cfg.model.trust_remote_code}
    policy, processor = load_vlm(args.policy, family=cfg.model.family, **load)
    reference, _ = load_vlm(args.reference, family=cfg.model.family, **load)
    sampling = cfg.sampling if args.n is None else dataclasses.replace(cfg.sampling, n=args.n)
    beta = args.beta if args.beta is not None else float(cfg.dpo.trainer.get("beta", 0.1))
    rows = best_of_n_answers(policy, reference, processor, read_rows(prompts_table), sampling, beta)
    out = Path(args.out or Path(cfg.run.output_dir) / "best_of_n.parquet")
    write_table(rows, out)
    print(f"best of {sampling.n} for {len(rows)} prompts (beta {beta}) written to {out}")


def _cmd_sft(cfg: Config, args: argparse.Namespace) -> None:
    # lazy: its stage imports torch and transformers; other commands start without them
    from mmrlaif.training.sft import sft_stage

    world = WorldPaths(Path(args.world or Path(cfg.run.output_dir) / "world"))
    out = args.out or Path(cfg.run.output_dir) / "sft"
    result = sft_stage(cfg.model, cfg.sft, cfg.world.image_size, world.sft, out, cfg.run.seed)
    print(f"base policy saved to {result.model_dir} ({result.seconds:.0f} s)")


def _cmd_evaluate(cfg: Config, args: argparse.Namespace) -> None:

    # lazy: its stage imports torch and transformers; other commands start without them
    from mmrlaif.evaluation.evaluate import evaluate_stage
    from mmrlaif.evaluation.hallucination.policy import run_benchmarks_on_policy
    from mmrlaif.models.load import load_vlm

    check_local_paths(cfg)

    world = WorldPaths(Path(args.world or Path(cfg.run.output_dir) / "world"))
    out = Path(args.out or Path(cfg.run.output_dir) / "eval.json")
    loaded = load_vlm(
        args.model, cfg.model.dtype, cfg.model.trust_remote_code, family=cfg.model.family
    )
    report = evaluate_stage(
        cfg.model, cfg.eval, args.model, world.prompts("eval"), world.pope, out, loaded
    )
    if cfg.eval.benchmarks.run:  # the field's benchmarks (eval.benchmarks), same model
        figures = run_benchmarks_on_policy(cfg.eval.benchmarks, *loaded, out.parent / "benchmarks")
        report = dataclasses.replace(report, benchmarks=figures)
        write_json(report.to_dict(), out)
    _print_figures(report.headline())
    print(f"report written to {out}")


def _cmd_demo(cfg: Config, args: argparse.Namespace) -> None:
    # lazy: its stage imports torch and transformers; other commands start without them
    from mmrlaif.evaluation.evaluate import evaluate_stage
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
    print(f"\nBase policy on the held-out eval split ({report.objects.n_responses} images):")
    _print_figures(report.headline())
    print(
        f"\nworld: {world.root}\nbase policy: {sft.model_dir}\n"
        f"report: {root / 'eval_base.json'}\nwall time: {time.perf_counter() - start:.0f} s"
    )


def _cmd_check(cfg: Config, args: argparse.Namespace) -> None:
    check(cfg, reach=not args.offline, timeout=args.timeout)
    print("preflight: no problem found")


def _cmd_run(cfg: Config, args: argparse.Namespace) -> None:
    check(cfg)  # every problem the preflight can find, before the first task
    start = time.perf_counter()
    uri = tracking_uri(cfg)
    # an earlier run in this folder that was killed left its MLflow run RUNNING: close it
    close_unfinished_runs(cfg, "KILLED", "found unfinished by a later mmrlaif run")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        summary = json.loads(run_local(cfg, uri, fresh=args.fresh).read_text())
    except TaskFailedError as exc:
        close_unfinished_runs(cfg, "FAILED", str(exc))
        if args.verbose:
            raise
        raise CommandError(str(exc)) from exc
    except KeyboardInterrupt:
        close_unfinished_runs(cfg, "KILLED", "mmrlaif run was interrupted")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"\n{cfg.pipeline.method} pipeline, {cfg.pipeline.iterations} iteration(s):")
    if summary.get("prompt_import"):
        print(f"alignment prompts: {summary['prompt_import']}")
    _print_iterations(summary["iterations"])
    registration = summary.get("registration") or {}
    if registration.get("version"):
        alias = cfg.tracking.gate.alias
        verdict = f"promoted to @{alias}" if registration.get("promoted") else "not promoted"
        print(
            f"\nfinal policy: {cfg.tracking.registered_model} version {registration['version']}, "
            f"{verdict} ({registration.get('reason', '')})"
        )
    print(
        f"\nwall time: {time.perf_counter() - start:.0f} s"
        f"\nMLflow run {summary['run_id']} in {redact_uri(uri)}"
        f"\nlook at it with: {open_ui_command(uri)}"
    )


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM during a run: unwind as Ctrl-C does, so the MLflow run is closed."""
    raise KeyboardInterrupt(f"signal {signum}")


def _cmd_ablate(cfg: Config, args: argparse.Namespace) -> None:
    check_local_paths(cfg)
    check_trainer_args(cfg)
    variants = [v for v in args.variants.split(",") if v]
    out = Path(args.out or Path(cfg.run.output_dir) / "ablation")
    if args.jobs < 1:
        raise CommandError(f"--jobs must be >= 1, got {args.jobs}")
    for variant in variants:  # unknown names fail before anything runs
        variant_config(cfg, variant, args.seeds[0], out, None)
    start = time.perf_counter()
    try:
        runs = run_ablation(cfg, variants, args.seeds, out, args.jobs)
    except AblationError as exc:
        raise CommandError(str(exc)) from exc
    print((out / "results.md").read_text())
    wall = time.perf_counter() - start
    print(f"{len(runs)} runs, {len(summarize(runs))} variants, wall time {wall:.0f} s")
    print(f"results: {out / 'results.md'}, {out / 'results.json'}, plot {out / 'ablation.png'}")


def _cmd_report(cfg: Config, args: argparse.Namespace) -> None:
    run = Path(args.run or cfg.run.output_dir)
    if not run.is_dir():
        raise CommandError(f"no run folder at {run} (give a run's output folder, e.g. runs/demo)")
    if find_pipeline_run(run) is None:
        raise CommandError(f"no pipeline run in {run} (expected kfp/<run>/ from `mmrlaif run`)")
    print(f"report written to {write_report(run, args.out)}")


def _print_iterations(entries: list[dict]) -> None:
    keys = ("object_hal", "response_hal", "cover", "pope_adversarial_accuracy")
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
