"""A failing or killed local run: the cause on the terminal, the earlier logs kept, a rerun
resuming where it stopped (real kfp.local, real processes)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from mmrlaif.cli import main

pytestmark = pytest.mark.integration

LOG_TAIL = """\
    Traceback (most recent call last):
      File "x.py", line 1, in <module>
    mmrlaif.io.prompts.PromptsError: bad.parquet: missing column(s) image
\x1b[91m18:03:44.259 - ERROR - Task \x1b[96m'prepare-world'\x1b[0m finished with status FAILURE
"""


def test_task_failure_reads_the_last_error_of_the_failed_task() -> None:
    from mmrlaif.pipelines.build import task_failure

    other = "    Traceback (most recent call last):\n    ValueError: elsewhere\n"
    text = other + "Task 'other' finished with status FAILURE\n" + LOG_TAIL
    assert (
        task_failure(text, "prepare-world") == "PromptsError: bad.parquet: missing column(s) image"
    )
    assert task_failure(text, "other") == "ValueError: elsewhere"
    assert task_failure("no traceback at all", "x") is None


def test_failed_task_names_itself_and_its_cause(tmp_path: Path, capsys, monkeypatch) -> None:
    # run_local exports the URI for its tasks: set here so that it is undone after the test
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"img": [b"x"], "q": ["hi"]}), bad)
    out = tmp_path / "run"
    out.mkdir()
    (out / "pipeline.log").write_text("an earlier run's log\n")
    argv = ["run", "--config", "configs/tiny_cpu.yaml"]
    argv += ["--set", f"data.align_prompts={bad}", "--set", f"run.output_dir={out}"]
    argv += ["--set", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"]
    argv += ["--set", "world.n_train=20", "--set", "world.n_eval=4", "--set", "world.n_val=4"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        f"mmrlaif: error: task 'prepare-world' failed: PromptsError: {bad}: missing column(s) "
        "image, question (has: img, q; set data.image_column / question_column)"
    ) in err
    assert "Traceback" not in err
    log = (out / "pipeline.log").read_text()
    assert log.startswith("an earlier run's log\n") and "==== mmrlaif run " in log


ALWAYS_RUN_TASKS = {
    "start-tracking",
    "log-base",
    "log-rlaifv-iteration",
    "register",
    "finish-tracking",
}


def _marked(pid: int) -> list[int]:
    """Processes started by the local run of process ``pid`` (its reaper's mark)."""
    from mmrlaif.pipelines.reaper import OWNER_ENV

    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if f"{OWNER_ENV}={pid}:".encode() in environ:
                found.append(int(entry.name))
    return found


def _run_until(config: Path, done, timeout: float = 300.0) -> subprocess.Popen:
    """Start ``mmrlaif run`` and SIGKILL it as soon as ``done()`` holds; returns the process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmrlaif.cli", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while not done():
        assert proc.poll() is None, "the run ended before the point it was to be killed at"
        assert time.monotonic() < deadline, "the run never reached the point to kill it at"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    return proc


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _no_task_left(pid: int, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while _marked(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _marked(pid) == [], "task processes of a killed run were left running"


@pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="needs Linux /proc")
def test_killed_run_resumes_where_it_stopped(tmp_path: Path, capsys, monkeypatch) -> None:
    """SIGKILL mid-DPO, then after the parent MLflow run opened: each rerun in the same folder
    reuses what finished, resumes DPO from its checkpoint, leaves no task running, closes the
    killed MLflow run and keeps every log."""
    from mlflow import MlflowClient

    from tests.integration.test_pipeline import MINIMAL

    out, db = tmp_path / "run", f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", db)
    data = json.loads(json.dumps(MINIMAL))
    data["run"] = {"output_dir": str(out)}
    data["tracking"]["uri"] = db
    # pairs form (a low reject threshold); DPO long enough to be killed in, a checkpoint a step
    data["labeling"] = {"reject_threshold": 0.05}
    data["sampling"] = {"n": 8, "max_new_tokens": 24}
    data["dpo"]["trainer"].update(
        num_train_epochs=40, per_device_train_batch_size=1, save_strategy="steps", save_steps=1
    )
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    log = out / "pipeline.log"

    def checkpoint() -> bool:
        saved = out.glob("checkpoints/dpo-*/checkpoint-*/trainer_state.json")
        return any(int(p.parent.name.split("-")[1]) >= 3 for p in saved)

    first = _run_until(config, checkpoint)
    _no_task_left(first.pid)

    def tracking_started() -> bool:  # in this attempt (kfp.local's task order may vary)
        attempts = _plain(log.read_text()).split("==== mmrlaif run ") if log.is_file() else []
        return len(attempts) == 3 and "Task 'start-tracking' finished" in attempts[-1]

    second = _run_until(config, tracking_started)
    _no_task_left(second.pid)
    client = MlflowClient(db)
    parents = client.search_runs(
        [client.get_experiment_by_name("test").experiment_id], "tags.mlflow.parentRunId IS NULL"
    )
    (killed,) = [run for run in parents if run.info.status == "RUNNING"]

    assert main(["run", "--config", str(config)]) == 0
    text = _plain(log.read_text())
    runs = text.split("==== mmrlaif run ")[1:]
    assert len(runs) == 3 and all("resuming the run of" in r.splitlines()[0] for r in runs[1:])
    # the second attempt reused everything before DPO, and DPO resumed from its checkpoint
    for task in ("prepare-world", "base-policy", "sample", "label", "build-pairs"):
        assert f"Task {task} cache hit" in runs[1], task
    resumed = r"resuming DPO from \S+/checkpoints/dpo-\w+/checkpoint-\d+"
    assert re.search(resumed, runs[1] + runs[2])
    # no attempt redid a task an earlier one finished, but the tracking tasks, which log anew
    finished: set[str] = set()
    for attempt in runs:
        ran = set(re.findall(r"Task '([\w-]+)' finished with status SUCCESS", attempt))
        assert not (ran & finished) - ALWAYS_RUN_TASKS, attempt
        finished |= ran
    assert ran >= ALWAYS_RUN_TASKS  # the last attempt logged the whole run
    assert client.get_run(killed.info.run_id).info.status == "KILLED"
    summary = json.loads((out / "summary.json").read_text())  # the contract, not kfp folders
    assert client.get_run(summary["run_id"]).info.status == "FINISHED"
    assert summary["iterations"][1]["pairs"] > 0
    # the report finds iteration 1's artifacts in the first attempt's folder
    from mmrlaif.tracking.report import collect_run

    it = collect_run(out).iterations[1]
    assert it.dpo and it.dpo["n_pairs"] > 0 and it.sampling and it.labeling
    assert not list(out.glob("checkpoints/dpo-*"))  # removed once DPO finished
    assert json.loads((out / "resume" / "state.json").read_text())["finished"] is True
