"""A failing local run: the cause on the terminal, the earlier logs kept (real kfp.local)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

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
