"""Build, compile and run the configured pipeline."""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import logging
import os
import re
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mmrlaif.artifacts import SUMMARY_FILE
from mmrlaif.config import Config, config_to_json
from mmrlaif.io import atomic_path, write_json
from mmrlaif.pipelines.reaper import Reaper

if TYPE_CHECKING:
    from mmrlaif.pipelines.skeleton import LocalRun

logger = logging.getLogger(__name__)


def build_pipeline(cfg: Config, on_kubernetes: bool = True, local_run: LocalRun | None = None):
    """The pipeline function of ``cfg.pipeline.method``, its ``config`` default = ``cfg``.

    Args:
        cfg: The configuration.
        on_kubernetes: Apply ``cfg.kubernetes`` (images, resources, GPUs, Secrets, retries) to
            the tasks; off for local runs, where they would not apply.
        local_run: A local run's key and checkpoint root (``run_local``): its tasks are cached
            under the key, so that a killed run rerun in its folder resumes.
    """
    text = config_to_json(cfg)
    if cfg.pipeline.method == "rlaifv":
        # lazy: kfp takes seconds to import; commands that build no pipeline do without it
        from mmrlaif.pipelines.rlaifv import rlaifv_pipeline

        return rlaifv_pipeline(cfg, text, on_kubernetes, local_run)
    # lazy: kfp takes seconds to import; commands that build no pipeline do without it
    from mmrlaif.pipelines.povid import povid_pipeline

    return povid_pipeline(cfg, text, on_kubernetes, local_run)


def compile_pipeline(cfg: Config, path: str | Path) -> Path:
    """Compile the pipeline to KFP IR YAML at ``path`` (written atomically)."""
    # lazy: kfp takes seconds to import; commands that build no pipeline do without it
    from kfp import compiler

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
_FAILED_TASK = re.compile(r"Inner task failed: '([^']+)'")


class TaskFailedError(RuntimeError):
    """A task of a local run failed.

    Attributes:
        task: The failing task (``prepare-world``, ``train-dpo-2``...), or ``None`` if unknown.
        cause: The last line of its error (``PromptsError: bad.parquet: missing column...``).
        log_path: The run's ``pipeline.log``.
    """

    def __init__(self, task: str | None, cause: str | None, log_path: Path) -> None:
        self.task, self.cause, self.log_path = task, cause, log_path
        what = f"task {task!r} failed" if task else "the pipeline failed"
        super().__init__(f"{what}: {cause or 'no error message in its log'} (log: {log_path})")


def task_failure(log_text: str, task: str | None) -> str | None:
    """The last error line a failed task left in the log: the final line of the last traceback
    before the task's ``FAILURE`` line, with the exception's module path dropped."""
    lines = _ANSI.sub("", log_text).splitlines()
    end = next(
        (
            i
            for i in range(len(lines) - 1, -1, -1)
            if "finished with status FAILURE" in lines[i]
            and (task is None or f"'{task}'" in lines[i])
        ),
        len(lines),
    )
    starts = [i for i in range(end) if lines[i].strip().startswith("Traceback (most recent")]
    if not starts:
        return None
    tail = [line.strip() for line in lines[starts[-1] + 1 : end] if line.strip()]
    if not tail:
        return None
    return re.sub(r"^(?:[A-Za-z_][\w]*\.)+(?=\w+:)", "", tail[-1])


_PROGRESS = re.compile(
    r"- (INFO|WARNING|ERROR) - (Task '.*' finished|Task .* cache hit|Pipeline '.*' finished"
    r"|.*FAIL)"
)


@contextlib.contextmanager
def _restore_print_and_logging():
    """Put ``builtins.print`` and the root logger back as they were after a local run.

    kfp.local swaps both per task (an indenting ``print``, a handler on ``sys.stdout``) and
    restores what it saw at the start; when tasks run at once (the shards of a
    ``dsl.ParallelFor``, in threads) one task can "restore" another's replacement, leaving
    every later ``print`` indented and the root logger writing to a closed stream.
    """

    root = logging.getLogger()
    saved_print, saved_handlers, saved_level = builtins.print, root.handlers[:], root.level
    try:
        yield
    finally:
        builtins.print = saved_print
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


#: Where a local run keeps what a rerun needs to resume it (in ``run.output_dir``): the state
#: of the folder's last run (``state.json``) and kfp.local's task cache (``cache/``).
RESUME_DIR = "resume"


def run_local(cfg: Config, tracking_uri: str, *, fresh: bool = False) -> Path:
    """Run the pipeline here with ``kfp.local`` (one subprocess per task).

    A run killed or failed part-way resumes when it is run again in the same output folder:
    each run has a key (kept in ``resume/state.json`` until it finishes), every task but the
    tracking ones is cached by ``kfp.local`` under that key, so the tasks that finished are
    reused, not redone, and an unfinished DPO task resumes from its last complete checkpoint
    (``<run.output_dir>/checkpoints``). A task's outputs enter the cache only when it
    succeeded, so nothing a killed task half-wrote is read. The tracking tasks always run:
    the resumed run is a new MLflow run (the killed one is closed by the CLI), logged whole.
    A run that finished, or ``fresh``, starts a new key: new samples, verdicts and training.

    Task logs are appended to ``<run.output_dir>/pipeline.log`` (earlier runs' logs are kept,
    each run under a header line); the terminal shows one line per task. Task processes still
    running when this returns or raises, or when this process is killed, are stopped
    (:class:`~mmrlaif.pipelines.reaper.Reaper`).

    Args:
        cfg: The configuration (``run.output_dir`` holds the KFP artifacts under ``kfp/``).
        tracking_uri: Exported as ``MLFLOW_TRACKING_URI`` so every task logs to the same store.
        fresh: Start anew even when the folder's last run did not finish.

    Returns:
        The run's summary JSON, ``<run.output_dir>/summary.json`` (removed when a run starts).

    Raises:
        TaskFailedError: A task failed: names it and its last error line (the whole log is in
            ``pipeline.log``).
    """
    # lazy: kfp takes seconds to import; commands that build no pipeline do without it
    from kfp import local

    from mmrlaif.pipelines.skeleton import LocalRun

    root = Path(cfg.run.output_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    state_path = root / RESUME_DIR / "state.json"
    state = _read_state(state_path)
    resumed = not fresh and state is not None and not state.get("finished")
    if resumed:
        logger.info(
            "resuming the run started %s that did not finish: its finished tasks are reused",
            state["started"],
        )
    else:
        state = {"run_key": uuid.uuid4().hex, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    state["finished"] = False
    write_json(state, state_path)
    (root / SUMMARY_FILE).unlink(missing_ok=True)  # the summary of a run that finished
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root / "kfp"),
        enable_caching=True,
        cache_root=str(root / RESUME_DIR / "cache"),
    )
    log_path = root / "pipeline.log"
    start = log_path.stat().st_size if log_path.is_file() else 0
    logger.info("running %s locally; task logs in %s", cfg.pipeline.method, log_path)
    with (
        log_path.open("a", buffering=1) as log,  # line by line: a SIGKILL loses nothing
        _restore_print_and_logging(),
        contextlib.redirect_stdout(_Progress(log, sys.stdout)),
        warnings.catch_warnings(),
        Reaper(),
    ):
        # the local runner ignores Kubernetes settings and base images, and says so per task
        warnings.filterwarnings("ignore", module=r"kfp\.local")
        _log_task_decisions(log)
        what = f"resuming the run of {state['started']}" if resumed else "new run"
        log.write(f"\n==== mmrlaif run {time.strftime('%Y-%m-%d %H:%M:%S')} ({what}) ====\n")
        try:
            local_run = LocalRun(state["run_key"], str(root / "checkpoints"))
            task = build_pipeline(cfg, on_kubernetes=False, local_run=local_run)()
        except RuntimeError as exc:
            log.flush()
            with log_path.open() as written:
                written.seek(start)
                text = written.read()
            match = _FAILED_TASK.search(_ANSI.sub("", str(exc)))
            failed = match.group(1) if match else None
            raise TaskFailedError(failed, task_failure(text, failed), log_path) from exc
    summary = root / SUMMARY_FILE
    write_json(json.loads(Path(task.output.path).read_text()), summary)
    write_json({**state, "finished": True}, state_path)
    return summary


def _log_task_decisions(log: TextIO) -> None:
    """Copy kfp.local's decisions about whole tasks (cache hits, retries) to the run's log.

    kfp.local logs them to the root logger outside any task, where its per-task handler (which
    writes task output to the redirected stdout, hence the log) is not installed. The handler
    added here lives as long as the run: :func:`_restore_print_and_logging` removes it.
    """
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(message)s"))
    handler.addFilter(lambda record: record.module == "task_executor")
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.WARNING, logging.INFO))


def _read_state(path: Path) -> dict | None:
    """The last run's state, ``None`` when there is none or it cannot be read (a new run)."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not state.get("run_key") or not state.get("started"):
        return None
    return state
