"""The evaluate step runs the configured benchmarks on the policy it evaluates (the tiny VLM
here: its answers are nonsense, the plumbing and the report are what is checked)."""

import json

import pytest

from mmrlaif.config import Config, ConfigError, check_local_paths, from_dict
from mmrlaif.evaluation.metrics import headline_of
from mmrlaif.models.load import save_model
from mmrlaif.steps.evaluate import evaluate_step


def _cfg(tmp_path, **bench) -> Config:
    return from_dict(
        Config,
        {
            "run": {"output_dir": str(tmp_path / "run")},
            "eval": {"max_new_tokens": 4, "limit": 2, "benchmarks": bench},
        },
    )


def test_the_evaluate_step_adds_the_benchmarks_to_its_report(
    tmp_path, small_world, tiny_model, bench_data
):
    cfg = _cfg(
        tmp_path,
        run=["pope", "object_halbench"],
        data={
            "pope": str(bench_data["pope"]),
            "object_halbench": str(bench_data["object_halbench"]),
        },
        max_new_tokens=4,
        limit=2,
    )
    check_local_paths(cfg)
    save_model(*tiny_model, tmp_path / "policy" / "model")
    report, _ = evaluate_step(cfg, tmp_path / "policy", small_world.root, tmp_path / "out")
    written = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert written["benchmarks"] == report.benchmarks
    headline = headline_of(written)
    for key in ("bench_pope_random_f1", "bench_pope_adversarial_yes_ratio"):
        assert 0.0 <= headline[key] <= 1.0, key
    assert "bench_object_halbench_mention_hallucination_rate" in headline
    assert headline["object_hal"] == report.objects.object_hal  # the toy figures are still there
    bench = json.loads((tmp_path / "out" / "benchmarks" / "benchmarks.json").read_text())
    assert set(bench["results"]) == {"pope", "object_halbench"}
    assert (tmp_path / "out" / "benchmarks" / "answers" / "pope.json").is_file()


def test_benchmark_config_errors_name_the_key(tmp_path, bench_data):
    with pytest.raises(ConfigError, match=r"eval.benchmarks.run: unknown benchmark\(s\) chair"):
        _cfg(tmp_path, run=["chair"])
    with pytest.raises(ConfigError, match=r"eval.benchmarks.data: no data root for amber"):
        _cfg(tmp_path, run=["amber"])
    with pytest.raises(ConfigError, match="eval.benchmarks.judge_endpoint: mmhal needs"):
        _cfg(tmp_path, run=["mmhal"], data={"mmhal": str(bench_data["mmhal"])})
    missing = _cfg(tmp_path, run=["pope"], data={"pope": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match="eval.benchmarks.data.pope: no such folder"):
        check_local_paths(missing)
