"""Build, compile and run the configured pipeline."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import warnings
from pathlib import Path
from typing import TextIO

from mmrlaif.config import Config, config_to_json

logger = logging.getLogger(__name__)


def build_pipeline(cfg: Config, on_kubernetes: bool = True):
    """The pipeline function of ``cfg.pipeline.method``, its ``config`` default = ``cfg``.

    Args:
        cfg: The configuration.
        on_kubernetes: Apply ``cfg.kubernetes`` (images, resources, GPUs, Secrets, retries) to
            the tasks; off for local runs, where they would not apply.
    """
    text = config_to_json(cfg)
    if cfg.pipeline.method == "rlaifv":
        from mmrlaif.pipelines.rlaif_v import rlaif_v_pipeline

        return rlaif_v_pipeline(cfg, text, on_kubernetes)
    from mmrlaif.pipelines.povid import povid_pipeline

    return povid_pipeline(cfg, text, on_kubernetes)


def compile_pipeline(cfg: Config, path: str | Path) -> Path:
    """Compile the pipeline to KFP IR YAML at ``path`` (written atomically)."""
    from kfp import compiler

    from mmrlaif.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        compiler.Compiler().compile(build_pipeline(cfg), str(tmp.with_suffix(".yaml")))
        tmp.with_suffix(".yaml").rename(tmp)
    return path


class _Progress(io.TextIOBase):
    """Stdout during a local run: everything to the log file, task progress to the terminal."""

    def __init__(self, log: TextIO, terminal: TextIO) -> None:
        self.log, self.terminal, self.pending = log, terminal, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.log.write(text)
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            plain = _ANSI.sub("", line)
            if _PROGRESS.search(plain):
                self.terminal.write(plain.strip() + "\n")
                self.terminal.flush()
        return len(text)

    def flush(self) -> None:
        self.log.flush()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PROGRESS = re.compile(
    r"- (INFO|WARNING|ERROR) - (Task '.*' finished|Pipeline '.*' finished|.*FAIL)"
)


@contextlib.contextmanager
def _restore_print_and_logging():
    """Put ``builtins.print`` and the root logger back as they were after a local run.

    kfp.local swaps both per task (an indenting ``print``, a handler on ``sys.stdout``) and
    restores what it saw at the start; when tasks run at once (the shards of a
    ``dsl.ParallelFor``, in threads) one task can "restore" another's replacement, leaving
    every later ``print`` indented and the root logger writing to a closed stream.
    """
    import builtins

    root = logging.getLogger()
    saved_print, saved_handlers, saved_level = builtins.print, root.handlers[:], root.level
    try:
        yield
    finally:
        builtins.print = saved_print
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def run_local(cfg: Config, tracking_uri: str) -> Path:
    """Run the pipeline here with ``kfp.local`` (one subprocess per task).

    Task logs go to ``<run.output_dir>/pipeline.log``; the terminal shows one line per task.

    Args:
        cfg: The configuration (``run.output_dir`` holds the KFP artifacts under ``kfp/``).
        tracking_uri: Exported as ``MLFLOW_TRACKING_URI`` so every task logs to the same store.

    Returns:
        The path of the run's summary JSON.

    Raises:
        RuntimeError: A task failed (its log is in ``pipeline.log``).
    """
    from kfp import local

    root = Path(cfg.run.output_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "kfp"))
    log_path = root / "pipeline.log"
    logger.info("running %s locally; task logs in %s", cfg.pipeline.method, log_path)
    with (
        log_path.open("w") as log,
        _restore_print_and_logging(),
        contextlib.redirect_stdout(_Progress(log, sys.stdout)),
        warnings.catch_warnings(),
    ):
        # the local runner ignores Kubernetes settings and base images, and says so per task
        warnings.filterwarnings("ignore", module=r"kfp\.local")
        try:
            task = build_pipeline(cfg, on_kubernetes=False)()
        except RuntimeError as exc:
            raise RuntimeError(f"{exc} (task logs: {log_path})") from exc
    return Path(task.output.path)
