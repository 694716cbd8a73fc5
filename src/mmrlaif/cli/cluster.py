"""Cluster commands: compile the pipeline, submit and schedule it on Kubeflow Pipelines,
and promote a registered model through the gate."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from mmrlaif.cli import AddCommand, CommandError, key_values
from mmrlaif.config import Config
from mmrlaif.images import ROLES, build_commands, format_command
from mmrlaif.pipelines import compile_pipeline
from mmrlaif.pipelines.client import KFPServerError, schedule_run, submit_run
from mmrlaif.tracking.gate import promote_version
from mmrlaif.tracking.uri import redact_uri, tracking_uri
from mmrlaif.training.validate import check_trainer_args


def register(add: AddCommand) -> None:
    """Add the cluster commands."""
    p = add("compile", _cmd_compile, "compile the configured pipeline to KFP YAML")
    p.add_argument("--out", help="YAML path (default: <run.output_dir>/<pipeline>.yaml)")
    _register_submit(add)
    _register_schedule(add)
    p = add("promote", _cmd_promote, "run the promotion gate on a registered model version")
    p.add_argument("--version", required=True, help="the candidate model version")
    p.add_argument("--model", help="registered model (default: tracking.registered_model)")
    p.add_argument("--tracking-uri", help="MLflow URI (default: MLFLOW_TRACKING_URI / config)")
    p = add("images", _cmd_images, "build (and push) the release images from images/")
    p.add_argument("--registry", help="registry to tag for (default: kubernetes.image_registry)")
    p.add_argument("--role", action="append", choices=["cpu", "gpu", "labeler"], default=[])
    p.add_argument("--push", action="store_true", help="push each image after building it")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--context", type=Path, default=Path(), help="repository root (build context)")


def _cmd_compile(cfg: Config, args: argparse.Namespace) -> None:
    check_trainer_args(cfg)

    out = args.out or Path(cfg.run.output_dir) / f"{cfg.pipeline.method}.yaml"
    print(f"pipeline written to {compile_pipeline(cfg, out)}")


def _cmd_images(cfg: Config, args: argparse.Namespace) -> int:
    if not (args.context / "images" / "versions.yaml").is_file():
        raise CommandError(f"{args.context.resolve()} is not the repository root (no images/)")
    registry = args.registry or cfg.kubernetes.image_registry
    roles = tuple(args.role) or ROLES
    sha = subprocess.run(
        ["git", "-C", str(args.context), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    for cmd in build_commands(args.context, registry, args.push, roles, sha or None):
        print(format_command(cmd), flush=True)
        if not args.dry_run and (rc := subprocess.call(cmd)) != 0:
            raise CommandError(f"{cmd[0]} {cmd[1]} failed with exit code {rc}")
    return 0


# ---- submit / schedule (Kubeflow Pipelines server) ------------------------------------------


def _register_submit(add: AddCommand) -> None:
    p = add(
        "submit", _cmd_submit, "submit one run of the configured pipeline to Kubeflow Pipelines"
    )
    _server_flags(p)
    p.add_argument("--run-name", help="run display name (default: <pipeline>-<UTC time>)")
    p.add_argument(
        "--pipeline-root", help="artifact root, e.g. s3://bucket/root (kfp.pipeline_root)"
    )


def _register_schedule(add: AddCommand) -> None:
    p = add(
        "schedule", _cmd_schedule, "create (or replace) the recurring run on Kubeflow Pipelines"
    )
    _server_flags(p)
    p.add_argument("--name", help="recurring run name; one of that name is replaced")
    p.add_argument("--cron", help="6-field cron, seconds first, e.g. '0 0 3 * * 1'")
    p.add_argument("--max-concurrency", type=int, help="runs of the schedule at once")
    p.add_argument(
        "--upload-pipeline",
        metavar="NAME",
        help="upload the pipeline as a new version of NAME and schedule that version",
    )
    p.add_argument(
        "--catchup",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="backfill intervals missed while paused (default: kfp.schedule.catchup)",
    )
    p.add_argument(
        "--pipeline-root", help="artifact root, e.g. s3://bucket/root (kfp.pipeline_root)"
    )


def _server_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by submit and schedule; unset ones default to the config's kfp section."""
    p.add_argument("--host", help="KFP API endpoint (default: kfp.host, else $KFP_HOST)")
    p.add_argument("--namespace", help="Kubeflow profile namespace (default: kfp.namespace)")
    p.add_argument("--experiment", help="experiment name (default: kfp.experiment)")
    p.add_argument("--service-account", help="ServiceAccount of the run's pods")
    p.add_argument("--package", type=Path, help="compiled pipeline YAML (default: compile now)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="pipeline argument (repeatable), e.g. run_date=2026-01-05",
    )


def _cmd_submit(cfg: Config, args: argparse.Namespace) -> None:
    check_trainer_args(cfg)

    try:
        run = submit_run(
            cfg,
            host=args.host,
            namespace=args.namespace,
            experiment=args.experiment,
            run_name=args.run_name,
            parameters=key_values(args.param, "--param"),
            service_account=args.service_account,
            pipeline_root=args.pipeline_root,
            package=args.package,
        )
    except KFPServerError as exc:
        raise CommandError(str(exc)) from exc
    print(f"run id: {run.run_id}")
    if run.url:
        print(f"run url: {run.url}")


def _cmd_schedule(cfg: Config, args: argparse.Namespace) -> None:
    check_trainer_args(cfg)

    try:
        scheduled = schedule_run(
            cfg,
            host=args.host,
            namespace=args.namespace,
            experiment=args.experiment,
            name=args.name,
            cron=args.cron,
            max_concurrency=args.max_concurrency,
            catchup=args.catchup,
            parameters=key_values(args.param, "--param"),
            service_account=args.service_account,
            pipeline_root=args.pipeline_root,
            package=args.package,
            upload_pipeline=args.upload_pipeline,
        )
    except KFPServerError as exc:
        raise CommandError(str(exc)) from exc
    if scheduled.pipeline_version_id:
        print(f"pipeline {args.upload_pipeline}: version id {scheduled.pipeline_version_id}")
    print(f"recurring run id: {scheduled.recurring_run_id}")
    replaced = ", ".join(scheduled.replaced) or "none (no recurring run of that name existed)"
    print(f"replaced: {replaced}")


# ---- promote (MLflow model registry) ---------------------------------------------------------


def _cmd_promote(cfg: Config, args: argparse.Namespace) -> int:
    """Gate one version: exit 0 when it holds the alias afterwards, 1 when it was rejected."""

    name = args.model or cfg.tracking.registered_model
    if not name:
        raise CommandError("no model: pass --model or set tracking.registered_model")
    uri = args.tracking_uri or tracking_uri(cfg)
    try:
        decision = promote_version(uri, name, args.version, cfg.tracking.gate)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    except Exception as exc:  # the server is down or refuses: say which and where
        where = redact_uri(uri)
        raise CommandError(
            redact_uri(f"MLflow registry at {where} failed: {type(exc).__name__}: {exc}")
        ) from exc
    verdict = "promoted to" if decision.promoted else "rejected for"
    print(f"{name} version {args.version} {verdict} {cfg.tracking.gate.alias}: {decision.reason}")
    return 0 if decision.promoted else 1
