"""The run report: a self-contained HTML page built from a run folder in the pipeline's format.

The run folders here are laid out as ``kfp.local`` lays them out, and their tables are written
by the real stage functions (feedback by ``label_samples``, pairs by ``pairs_stage``); only the
models are left out.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image

from mmrlaif import artifacts
from mmrlaif.cli import main
from mmrlaif.config import PairsConfig
from mmrlaif.evaluation.metrics import object_hallucination, pope
from mmrlaif.io import image_to_cell, write_json, write_table
from mmrlaif.labeling.claims import LexiconClaimExtractor, TemplateQuestionBuilder
from mmrlaif.labeling.feedback import label_samples
from mmrlaif.labeling.labeler import Verdict
from mmrlaif.pairs.stage import pairs_stage
from mmrlaif.pairs.table import pair_row
from mmrlaif.toyworld import toy_lexicon
from mmrlaif.tracking.lineage import benchmark_tags
from mmrlaif.tracking.report import (
    REPORT_NAME,
    collect_run,
    find_pipeline_run,
    write_and_log_report,
    write_report,
)

ROOT = Path(__file__).resolve().parents[3]
RUN_ID = "0123456789abcdef"
REJECTED = "A cup & a <b>saucer</b> and a dog."
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _ObjectLabeler:
    """Says no to questions about the objects in ``absent``, yes to the rest."""

    def __init__(self, absent: Sequence[str]) -> None:
        self.absent = absent

    def answer(self, images, questions):
        return [
            Verdict(0.2, 0.7) if any(f" {o} " in q for o in self.absent) else Verdict(0.8, 0.1)
            for q in questions
        ]


def _eval_report(responses: list[str], objects: list[list[str]], pope_yes: list[bool]) -> dict:
    """``eval.json`` as ``EvalReport.to_dict`` writes it."""
    result = pope(pope_yes, [True, False, True, False])
    return {
        "objects": object_hallucination(responses, objects, toy_lexicon()).to_dict(),
        "pope": {"adversarial": result.to_dict(), "random": result.to_dict()},
        "hallucinated_partner_share": 0.0,
        "examples": [],
    }


def _task(run: Path, name: str, output: str | None = None, value: str | None = None) -> Path:
    """A task folder with its ``executor_output.json``; returns its output folder."""
    task = run / name
    task.mkdir(parents=True, exist_ok=True)
    params = {"parameterValues": {"Output": value}} if value is not None else {}
    (task / "executor_output.json").write_text(json.dumps(params))
    return task / (output or "out")


def _prompts(path: Path) -> Path:
    rows = [
        {
            "prompt_id": f"align-{i}",
            "question": "Describe the image.",
            "image": image_to_cell(Image.new("RGB", (64, 64), (40 * i, 90, 160))),
            "objects": ["cup", "saucer"],
        }
        for i in range(3)
    ]
    write_table(rows, path)
    return path


def _rlaifv_iteration(run: Path, i: int, prompts: Path, absent: Sequence[str]) -> None:
    """Sample, label, pairs and DPO folders of iteration ``i`` (``-<i>`` task suffixes)."""
    suffix = "" if i == 1 else f"-{i}"
    samples = [
        {"prompt_id": f"align-{p}", "sample_idx": s, "seed": s, "response": text, "policy": "p"}
        for p in range(3)
        for s, text in enumerate(["A cup and a saucer.", REJECTED, "A saucer and a cup here."])
    ]
    samples_dir = _task(run, f"sample{suffix}", "samples")
    write_table(samples, artifacts.table(samples_dir, "samples"))
    artifacts.write_stats(samples_dir, {"samples_out": len(samples)})
    rows, stats = label_samples(
        samples,
        [
            {"prompt_id": f"align-{p}", "image": image_to_cell(Image.new("RGB", (8, 8)))}
            for p in range(3)
        ],
        LexiconClaimExtractor(toy_lexicon()),
        TemplateQuestionBuilder(),
        _ObjectLabeler(absent),
    )
    feedback_dir = _task(run, f"label{suffix}", "feedback")
    write_table(rows, artifacts.table(feedback_dir, "feedback"))
    artifacts.write_stats(feedback_dir, stats)
    pairs_dir = _task(run, f"build-pairs{suffix}", "pairs")
    stats = pairs_stage(
        PairsConfig(),
        artifacts.table(feedback_dir, "feedback"),
        prompts,
        artifacts.table(pairs_dir, "pairs"),
    )
    artifacts.write_stats(pairs_dir, stats)
    trained = _task(run, f"train-dpo{suffix}", "trained")
    steps = [
        {
            "step": s,
            "epoch": s / 2,
            "loss": 0.69 - 0.1 * s,
            "rewards/margins": 0.25 * s,
            "rewards/accuracies": 0.5 + 0.25 * s,
        }
        for s in (1, 2)
    ]
    skipped = None if stats.pairs_out else "no pairs after labeling: policy passed on unchanged"
    dpo = {  # DPOResult.to_dict()
        "n_pairs": stats.pairs_out,
        "sources": {"rlaifv": stats.pairs_out},
        "seconds": 1.5,
        "history": [*steps, {"step": 2, "train_loss": 0.54}] if stats.pairs_out else [],
        "skipped_reason": skipped,
        "model_dir": str(trained / "model"),
        "resumed_from": None,
    }
    write_json(dpo, trained / "dpo.json")


@pytest.fixture()
def rlaifv_run(tmp_path: Path) -> Path:
    """A finished two-iteration RLAIF-V run: iteration 1 trains and is kept, iteration 2 finds
    no pairs (every claim accepted), so its DPO is skipped."""
    root = tmp_path / "run"
    run = root / "kfp" / "mmrlaif-rlaifv-2026-01-01-00-00-00-000000"
    prompts = _prompts(_task(run, "prepare-world", "world") / "prompts_align.parquet")
    _task(run, "start-tracking", value=RUN_ID)
    base = _eval_report(
        ["a cup and a dog", "a fork"], [["cup"], ["fork"]], [True, True, True, False]
    )
    better = _eval_report(["a cup", "a fork"], [["cup"], ["fork"]], [True, False, True, False])
    write_json(base, _task(run, "evaluate", "report") / "eval.json")
    for n in (2, 3):  # the trained policies of iterations 1 and 2
        write_json(better, _task(run, f"evaluate-{n}", "report") / "eval.json")
    for n, keep in ((1, True), (2, False)):
        selected = _task(run, "select-policy" + ("" if n == 1 else f"-{n}"), "report")
        write_json(better, selected / "eval.json")
        write_json(
            {"keep_new": keep, "metric": "object_f1", "reason": "test"}, selected / "selection.json"
        )
    _rlaifv_iteration(run, 1, prompts, absent=["dog"])
    _rlaifv_iteration(run, 2, prompts, absent=[])
    return root


def _html(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", text)
    return text


def test_report_is_one_self_contained_page_with_every_section(rlaifv_run: Path) -> None:
    path = write_report(rlaifv_run)
    assert path == rlaifv_run / REPORT_NAME
    html = _html(path)
    assert "http://" not in html and "https://" not in html and "<script" not in html
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    plots = re.findall(r'class="plot" alt="plot" src="data:image/png;base64,([^"]+)"', html)
    assert len(plots) == 4  # hallucination, POPE, pairs, DPO
    assert all(base64.b64decode(p).startswith(PNG_MAGIC) for p in plots)
    assert "Not available" not in html
    assert RUN_ID in html and "rlaifv-2026-01-01" in html
    # no finish step ran in this folder: the report says the run did not finish
    assert "<td>status</td><td>did not finish: the finish step left no summary" in html
    # base: 1 of 3 mentions hallucinated, 1 of 2 responses; then none
    assert "<td>33.3%</td><td>50.0%</td><td>100.0%</td>" in html
    assert "ObjHal 33.3% → 0.0% (-100%)" in html
    assert "<td>trained (new)</td>" in html and "<td>incumbent</td>" in html
    assert "skipped: no_score_gap" in html
    assert "no pairs after labeling: policy passed on unchanged" in html
    assert '<td class="n">0.5</td>' in html  # last reward margin of iteration 1
    assert '<td class="n">0.54</td>' in html  # its train loss


def test_rejected_claims_are_marked_in_the_escaped_rejected_answer(rlaifv_run: Path) -> None:
    html = _html(write_report(rlaifv_run))
    assert "A cup &amp; a &lt;b&gt;saucer&lt;/b&gt; and a <mark>dog</mark>." in html
    assert "<b>saucer</b>" not in html
    assert '<tr class="no"><td>There is a dog in the image.</td>' in html
    assert '<img class="thumb" alt="prompt image" src="data:image/png;base64,' in html


def test_povid_run_says_labeling_is_not_available_and_marks_injected_words(tmp_path: Path) -> None:
    root = tmp_path / "povid"
    run = root / "kfp" / "mmrlaif-povid-2026-01-01-00-00-00-000000"
    prompt = {
        "prompt_id": "align-0",
        "question": "Describe the image.",
        "image": image_to_cell(Image.new("RGB", (64, 64))),
    }
    rows = [pair_row(prompt, "A fork and a ball.", "A fork and a knife and a ball.", "povid_text")]
    pairs_dir = _task(run, "povid-pairs", "pairs")
    write_table(rows, artifacts.table(pairs_dir, "pairs"))
    artifacts.write_stats(
        pairs_dir,
        {
            "prompts_in": 1,
            "pairs_out": 1,
            "by_source": {"povid_text": 1},
            "skips": {"povid_noise/empty_answer": 1},
        },
    )
    write_json(
        _eval_report(["a fork"], [["fork"]], [True] * 4),
        _task(run, "evaluate", "report") / "eval.json",
    )
    summary = {
        "method": "povid",
        "run_id": RUN_ID,
        "iterations": [{"iteration": 0}, {"iteration": 1, "pairs": 1}],
    }
    html = _html(write_report(root, summary=summary))
    assert (
        "Not available: this run has no labeling feedback (POVID builds its pairs without it)"
        in html
    )
    assert re.search(r"<mark>[^<]*knife[^<]*</mark>", html)
    assert "povid_text: 1" in html and "skipped: povid_noise/empty_answer" in html
    assert 'DPO training</h2>\n<p class="na">' not in html  # the history's pair count shows


def test_history_alone_gives_the_figures_and_says_what_is_missing(tmp_path: Path) -> None:
    history = [
        {"iteration": 0, "headline": {"object_hal": 0.2, "response_hal": 0.4, "cover": 0.9}},
        {
            "iteration": 1,
            "headline": {"object_hal": 0.1, "response_hal": 0.2, "cover": 0.85},
            "kept_new": True,
            "pairs": 7,
            "skipped_reason": None,
        },
    ]
    out = write_report(None, tmp_path / "deep" / "r.html", history)
    html = _html(out)
    assert "<td>20.0%</td><td>40.0%</td><td>90.0%</td>" in html
    assert "pipeline run folder</td><td>not found" in html
    for section in ("pope-by-iteration", "ai-feedback-labeling", "example-pairs"):
        assert re.search(
            rf'<section id="{section}"><h2>[^<]+</h2>\n<p class="na">Not available', html
        )
    assert '<td class="n">7</td>' in html  # pairs of iteration 1, from the history


def test_a_broken_artifact_costs_only_its_section(rlaifv_run: Path, caplog) -> None:
    for table in (rlaifv_run / "kfp").glob("*/build-pairs*/pairs/pairs.parquet"):
        table.write_bytes(b"not parquet")
    with caplog.at_level(logging.WARNING, logger="mmrlaif.tracking.report"):
        html = _html(write_report(rlaifv_run))
    assert 'Example pairs</h2>\n<p class="na">Not available: could not be built' in html
    assert "<td>33.3%</td><td>50.0%</td>" in html
    assert any("Example pairs" in r.getMessage() for r in caplog.records)


def test_the_pipeline_run_of_a_tracking_run_is_found_among_several(rlaifv_run: Path) -> None:
    other = rlaifv_run / "kfp" / "mmrlaif-rlaifv-2026-02-02-00-00-00-000000"
    _task(other, "start-tracking", value="another-run")
    assert find_pipeline_run(rlaifv_run).name.startswith("mmrlaif-rlaifv-2026-02-02")  # newest
    found = find_pipeline_run(rlaifv_run, RUN_ID)
    assert found is not None and found.name.startswith("mmrlaif-rlaifv-2026-01-01")
    assert find_pipeline_run(rlaifv_run, "no-such-run") is None
    data = collect_run(rlaifv_run, run_id=RUN_ID)
    assert [it.n_pairs for it in data.iterations[1:]] == [data.iterations[1].pairs["pairs_out"], 0]


def test_finish_step_writes_the_report_and_logs_it_on_the_parent_run(
    rlaifv_run: Path, monkeypatch
) -> None:
    import mlflow

    from mmrlaif.artifacts import IMPORT_REPORT
    from mmrlaif.config import Config, from_dict
    from mmrlaif.steps.track import finish_step, record_lineage_step, start_step

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{rlaifv_run.parent}/mlflow.db"
    cfg = from_dict(
        Config,
        {"run": {"output_dir": str(rlaifv_run)}, "tracking": {"uri": uri, "experiment": "r"}},
    )
    run_id = start_step(cfg, run_name="report-test")
    (pipeline_run,) = (rlaifv_run / "kfp").iterdir()
    _task(pipeline_run, "start-tracking", value=run_id)  # as the pipeline's task returns it
    # the world step imported prompts and skipped some: the counts reach MLflow and the summary
    world = pipeline_run / "prepare-world" / "world"
    stats = {"source": "s3://b/p.parquet", "rows": 5, "kept": 3, "skipped": {"image too large": 2}}
    write_json(stats, world / IMPORT_REPORT)
    record_lineage_step(cfg, run_id, world, world)
    history = [{"iteration": 0, "headline": {"object_hal": 0.5}}, {"iteration": 1, "headline": {}}]
    summary = finish_step(cfg, run_id, json.dumps(history))
    assert summary["run_id"] == run_id
    line = "kept 3 of 5 rows from s3://b/p.parquet; skipped: image too large 2"
    assert summary["prompt_import"] == line
    html = _html(rlaifv_run / REPORT_NAME)
    assert run_id in html and "<mark>dog</mark>" in html
    assert f"<td>alignment prompts imported</td><td>{line}</td>" in html
    assert "<td>status</td><td>finished</td>" in html
    client = mlflow.MlflowClient(uri)
    metrics = client.get_run(run_id).data.metrics
    assert (metrics["import/kept"], metrics["import/skipped/image too large"]) == (3, 2)
    assert "report.html" in {a.path for a in client.list_artifacts(run_id)}
    assert client.get_run(run_id).info.status == "FINISHED"


def test_finish_hook_never_raises(tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING):
        assert write_and_log_report("sqlite:///unused.db", RUN_ID, blocker, []) is None
    assert "could not be written" in caplog.text


def test_cli_report(rlaifv_run: Path, tmp_path: Path, capsys) -> None:
    assert main(["report", str(rlaifv_run)]) == 0
    assert (rlaifv_run / REPORT_NAME).is_file()
    out = tmp_path / "elsewhere.html"
    preset = str(ROOT / "configs" / "tiny_cpu.yaml")
    assert (
        main(
            [
                "report",
                "--config",
                preset,
                "--set",
                f"run.output_dir={rlaifv_run}",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "report written to" in capsys.readouterr().out and out.is_file()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no run folder at" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no pipeline run in" in capsys.readouterr().err


def test_importing_the_report_module_loads_no_plotting() -> None:
    code = "import sys, mmrlaif.tracking.report; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_cpu_tasks_import_neither_torch_nor_transformers() -> None:
    # the tracking, world and pairs tasks start in a fraction of a second (each KFP task is a
    # process of its own): the chat format's messages must not pull in a model library
    code = (
        "import sys, mmrlaif.steps.track, mmrlaif.steps.pairs, mmrlaif.steps.world; "
        "loaded = {'torch', 'transformers'} & set(sys.modules); assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_field_benchmarks_say_when_not_the_reference_figures(rlaifv_run: Path) -> None:
    run = next((rlaifv_run / "kfp").iterdir())
    for folder in ("evaluate", "select-policy", "select-policy-2"):
        path = run / folder / "report" / "eval.json"
        report = json.loads(path.read_text())
        report["benchmarks"] = {"amber_chair": 0.273, "pope_random_f1": 0.5}
        report["benchmark_notes"] = {"amber": ["NLTK resource 'x' not found: <fallback>"]}
        write_json(report, path)
    html = _html(write_report(rlaifv_run))
    assert "<h2>Field benchmarks</h2>" in html
    assert "<td>amber_chair</td><td>27.3%</td>" in html
    # the reason is shown, escaped; POPE (reference figures) has no note
    assert "amber: not the reference script's figures</b>: NLTK resource" in html
    assert "&lt;fallback&gt;" in html and "pope: not the reference" not in html
    assert benchmark_tags(json.loads(path.read_text())) == {
        "benchmark.amber.approximate": "NLTK resource 'x' not found: <fallback>",
        "benchmark.amber.reference": "false",
        "benchmark.pope.reference": "true",
    }
