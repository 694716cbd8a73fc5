"""``mmrlaif estimate``: the expected work and GPU-hours of a run, before submitting it."""

from __future__ import annotations

import argparse
import json

from mmrlaif.cli import AddCommand
from mmrlaif.config import Config
from mmrlaif.cost import Estimate, StageEstimate, estimate_run


def register(add: AddCommand) -> None:
    """Add the ``estimate`` command."""
    p = add("estimate", _cmd_estimate, "expected work and GPU-hours of a run, per stage")
    p.add_argument(
        "--prompts",
        type=int,
        metavar="N",
        help="prompts per iteration (default: data.limit, or world.n_align for the toy world)",
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _cmd_estimate(cfg: Config, args: argparse.Namespace) -> None:
    est = estimate_run(cfg, args.prompts)
    if args.json:
        print(json.dumps({"pipeline": cfg.pipeline.name} | est.to_dict(), indent=2))
    else:
        print(format_estimate(est, cfg.pipeline.name))


def format_estimate(est: Estimate, name: str = "") -> str:
    """The estimate as a plain-text table, then its assumptions."""
    bound = " (an upper bound)" if est.upper_bound else ""
    head = (
        f"estimate for {name or 'the pipeline'} ({est.method}): {est.iterations} iteration(s), "
        f"{est.prompts:,} prompts per iteration{bound}"
    )
    rows = [("stage", "work per run", "runs", "GPUs", "GPU-h/run", "GPU-h total", "wall-h total")]
    rows += [_row(stage) for stage in est.stages]
    rows.append(
        ("total", "", "", "", "", _hours(est.total_gpu_hours), _hours(est.total_wall_hours))
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [head, ""]
    for row in rows:
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines += ["", "assumptions (figures per GPU; set them under `estimate:`):"]
    lines += [f"  - {note}" for note in est.assumptions]
    return "\n".join(lines)


def _row(stage: StageEstimate) -> tuple[str, ...]:
    work = ", ".join(f"{_count(n)} {k.replace('yes_no', 'yes/no').replace('_', ' ')}"
                     for k, n in stage.work.items())  # fmt: skip
    gpus = str(stage.gpus) if stage.gpus else "cpu"
    if stage.server_gpus:
        gpus += f" + {stage.server_gpus} server"
    return (
        stage.name,
        work,
        str(stage.runs),
        gpus,
        _hours(stage.gpu_hours),
        _hours(stage.total_gpu_hours),
        _hours(stage.total_wall_hours),
    )


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1_000_000 else f"{n:,}"


def _hours(h: float | None) -> str:
    if h is None:
        return "-"
    if h == 0:
        return "0"
    return f"{h:.2f}" if h < 10 else f"{h:,.1f}" if h < 1000 else f"{h:,.0f}"
