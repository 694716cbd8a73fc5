"""``mmrlaif estimate``: work and GPU-hours per stage, checked against figures derived by hand."""

import dataclasses
import json
from pathlib import Path

import pytest

from mmrlaif.cli import main
from mmrlaif.config import (
    Config,
    ConfigError,
    EstimateConfig,
    from_dict,
    load_config,
)
from mmrlaif.cost import DPO_STEP_DEFAULTS, estimate_run

ROOT = Path(__file__).resolve().parents[2]
H = 3600

#: One GPU per task, defaults elsewhere: world.n_align 1000, 10 samples, 3 iterations.
TOY = {"world": {"n_align": 1000}, "kubernetes": {"gpu": {"accelerator_limit": 1}}}

#: The shape of configs/llava15_7b/rlaifv.yaml (written out: the preset may change).
CLUSTER = {
    "data": {"align_prompts": "s3://b/prompts.parquet", "limit": 20000},
    "sampling": {"n": 10, "max_new_tokens": 512},
    "labeling": {
        "extractor": "llm",
        "question_builder": "llm",
        "llm_endpoint": "http://divide:8000/v1",
        "labeler": "openai",
        "labeler_name_or_path": "labeler",
        "endpoint": "http://labeler:8000/v1",
    },
    "dpo": {"trainer": {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 8}},
    "eval": {
        "max_new_tokens": 512,
        "benchmarks": {
            "run": ["pope", "object_halbench", "amber"],
            "data": {"pope": "s3://p", "object_halbench": "s3://o", "amber": "s3://a"},
            "limit": 500,
        },
    },
    "pipeline": {"iterations": 4},
    "kubernetes": {"gpu": {"accelerator_limit": 1}, "train": {"accelerator_limit": 8}},
}


def config(data, **overrides):
    cfg = from_dict(Config, data)
    return dataclasses.replace(cfg, **overrides)


def test_toy_world_run_by_hand():
    est = estimate_run(config(TOY))
    assert (est.prompts, est.prompts_source, est.upper_bound) == (
        1000,
        "world.n_align (the toy world's align split)",
        False,
    )
    sampling, labeling, dpo, evaluation = est.stages
    # 1000 prompts x 10 samples x 120 tokens = 1.2M tokens; at 2000 tok/s on 1 GPU: 600 s
    assert sampling.work == {"prompts": 1000, "samples": 10_000, "tokens": 1_200_000}
    assert sampling.gpu_hours == pytest.approx(600 / H)  # 0.1667
    assert sampling.wall_hours == pytest.approx(600 / H)
    assert (sampling.runs, sampling.total_gpu_hours) == (3, pytest.approx(1800 / H))
    # 10,000 answers x 8 claims = 80,000 questions; the policy labels them on its one GPU
    # (lexicon claims: no splitter) at 20 questions/s: 4000 s
    assert labeling.work == {"claims": 80_000, "questions": 80_000}
    assert labeling.gpu_hours == pytest.approx(4000 / H)  # 1.111
    assert (labeling.gpus, labeling.server_gpus) == (1, 0)
    # 1000 prompts x 1.6 = 1600 pairs; trainer defaults: 8 per device, 1 GPU, 4 epochs:
    # 200 steps per epoch, 800 steps; 6400 pair passes at 2 pairs/s: 3200 s
    assert dpo.work == {"pairs": 1600, "steps": 800, "pair_passes": 6400}
    assert dpo.gpu_hours == pytest.approx(3200 / H)  # 0.8889
    # eval 300 + val 100 descriptions x min(120, eval.max_new_tokens 48) = 19,200 tokens at
    # 600 tok/s = 32 s; POPE 300 images x 2 x 3 categories = 1800 yes/no at 30/s = 60 s
    assert evaluation.work == {"descriptions": 400, "yes_no": 1800, "tokens": 19_200}
    assert evaluation.gpu_hours == pytest.approx(92 / H)  # 0.02556
    assert evaluation.runs == 4  # the base policy and 3 iterations
    # 3 x (600 + 4000 + 3200) + 4 x 92 = 23,768 s = 6.602 GPU-hours
    assert est.total_gpu_hours == pytest.approx(23_768 / H)
    assert est.total_wall_hours == pytest.approx(23_768 / H)


def test_cluster_run_by_hand():
    est = estimate_run(config(CLUSTER))
    assert (est.prompts, est.prompts_source, est.upper_bound) == (20_000, "data.limit", True)
    assert "(an upper bound)" in est.assumptions[0]
    sampling, labeling, dpo, evaluation = est.stages
    # 200,000 samples x 120 tokens = 24M tokens / 2000 tok/s = 12,000 s = 3.333 GPU-h
    assert sampling.work["tokens"] == 24_000_000
    assert sampling.gpu_hours == pytest.approx(12_000 / H)
    # 1.6M claims: splitter 1.6M / 80 = 20,000 GPU-s on its 1-GPU server (20,000 s), labeler
    # 1.6M / 20 = 80,000 GPU-s on its 2-GPU server (40,000 s): the label task waits 60,000 s
    # holding 1 GPU; 100,000 + 60,000 GPU-s = 44.44 GPU-h, 16.67 h
    assert labeling.work == {"claims": 1_600_000, "questions": 1_600_000}
    assert (labeling.gpus, labeling.server_gpus) == (1, 3)
    assert labeling.gpu_hours == pytest.approx(160_000 / H)
    assert labeling.wall_hours == pytest.approx(60_000 / H)
    # 32,000 pairs, 8 GPUs x 1 per device x 8 accumulation = 64 per step: 4000 batches per
    # process, 500 steps per epoch, 2000 steps; 128,000 passes / 2 = 64,000 GPU-s over 8 GPUs
    assert dpo.work == {"pairs": 32_000, "steps": 2000, "pair_passes": 128_000}
    assert dpo.gpus == 8
    assert dpo.gpu_hours == pytest.approx(64_000 / H)  # 17.78
    assert dpo.wall_hours == pytest.approx(8000 / H)  # 2.222
    # descriptions: 300 eval + 100 val + 300 Object HalBench + 500 AMBER (first 500 of
    # query_all.json are generative) = 1200 x 120 = 144,000 tokens / 600 = 240 s;
    # yes/no: 1800 toy POPE + 500 x 3 POPE splits = 3300 / 30 = 110 s
    assert evaluation.work == {"descriptions": 1200, "yes_no": 3300, "tokens": 144_000}
    assert evaluation.gpu_hours == pytest.approx(350 / H)
    # 4 x (12,000 + 160,000 + 64,000) + 5 x 350 = 945,750 GPU-s = 262.7 GPU-h
    assert est.total_gpu_hours == pytest.approx(945_750 / H)
    # wall: 4 x (12,000 + 60,000 + 8000) + 5 x 350 = 321,750 s = 89.4 h
    assert est.total_wall_hours == pytest.approx(321_750 / H)


def test_trainjob_gpus_and_max_steps():
    data = CLUSTER | {"kubernetes": CLUSTER["kubernetes"] | {"trainjob": {"num_nodes": 2}}}
    dpo = estimate_run(config(data)).stage("dpo")
    # 2 nodes x 8 GPUs: 32,000 / 16 = 2000 batches per process, 250 steps per epoch, x 4
    assert (dpo.gpus, dpo.work["steps"]) == (16, 1000)
    assert dpo.wall_hours == pytest.approx(64_000 / 16 / H)
    data["dpo"] = {"trainer": CLUSTER["dpo"]["trainer"] | {"max_steps": 100}}
    dpo = estimate_run(config(data)).stage("dpo")
    # max_steps wins: 100 steps x 1 per device x 16 GPUs x 8 accumulation = 12,800 passes
    assert dpo.work == {"pairs": 32_000, "steps": 100, "pair_passes": 12_800}


def test_sizes_are_capped_by_the_config():
    data = TOY | {
        "sampling": {"max_new_tokens": 50},
        "estimate": {"pairs_per_prompt": 5.0},
        "pairs": {"max_pairs_per_prompt": 2},
    }
    est = estimate_run(config(data))
    assert est.stage("sampling").work["tokens"] == 1000 * 10 * 50
    assert est.stage("dpo").work["pairs"] == 2000
    assert any("capped by pairs.max_pairs_per_prompt" in n for n in est.assumptions)


def test_prompt_sources():
    file_cfg = config({"data": {"align_prompts": "s3://b/p.parquet"}})
    with pytest.raises(ConfigError, match=r"data\.align_prompts.*data\.limit.*--prompts"):
        estimate_run(file_cfg)
    est = estimate_run(file_cfg, prompts=500)
    assert (est.prompts, est.prompts_source, est.upper_bound) == (500, "--prompts", False)
    with pytest.raises(ConfigError, match="--prompts must be >= 1"):
        estimate_run(file_cfg, prompts=0)
    # continual: up to 1000 new prompts plus 20% replayed ones
    prefix = {"data": {"prompts_prefix": "s3://b/prompts", "limit": 1000, "replay_fraction": 0.2}}
    est = estimate_run(config(prefix))
    assert (est.prompts, est.upper_bound) == (1200, True)


def test_shards_share_sampling_and_labeling_not_gpu_hours():
    base = estimate_run(config(TOY))
    est = estimate_run(config(TOY | {"pipeline": {"shards": 4}}))
    for name in ("sampling", "labeling"):
        one, four = base.stage(name), est.stage(name)
        assert four.gpus == 4
        assert four.gpu_hours == pytest.approx(one.gpu_hours)
        assert four.wall_hours == pytest.approx(one.wall_hours / 4)


def test_cpu_tasks_have_no_gpu_hours_and_the_tiny_preset_works():
    est = estimate_run(load_config(ROOT / "configs" / "tiny_cpu.yaml"))
    assert est.total_gpu_hours == 0
    assert est.total_wall_hours is None
    assert all(s.gpus == 0 for s in est.stages)
    assert est.stage("dpo").work["steps"] == 200  # 500 x 1.6 = 800 pairs / 16 per step, x 4 epochs


def test_povid_pairs_and_noise_answers():
    povid = {"pipeline": {"method": "povid", "iterations": 1}}
    est = estimate_run(config(TOY | povid | {"povid": {"noise_rejection": "offline"}}))
    # offline: one noised-image answer per prompt, min(120, povid.max_new_tokens 48) tokens
    assert est.stage("sampling").work == {"prompts": 1000, "samples": 1000, "tokens": 48_000}
    # online (the default): the noise rejections are built inside DPO, nothing generated
    online = estimate_run(config(TOY | povid))
    assert online.stage("sampling").work == {"prompts": 1000, "samples": 0, "tokens": 0}
    assert online.stage("dpo").work["pairs"] == 2000
    # POVID's stages: 3 then 1 epoch(s), 2 iterations: 4 epochs of 2000 pairs in all
    stages = [{"num_train_epochs": 3}, {"num_train_epochs": 1}]
    two = {"pipeline": {"method": "povid", "iterations": 2}, "povid": {"stages": stages}}
    staged = estimate_run(config(TOY | two)).stage("dpo")
    assert staged.runs * staged.work["pair_passes"] == 4 * 2000
    assert est.stage("labeling").work == {"rewrites": 0}  # co-occurrence injector: no LLM
    assert est.stage("labeling").gpu_hours == 0
    assert est.stage("dpo").work["pairs"] == 2000  # povid_text + povid_noise per prompt


def test_amber_sizes():
    bench = {"run": ["amber"], "data": {"amber": "s3://a"}}
    est = estimate_run(config(TOY | {"eval": {"benchmarks": bench}}))
    # 300 + 100 toy descriptions + 1004 AMBER generative; 1800 toy POPE + 14,216 discriminative
    assert est.stage("evaluation").work["descriptions"] == 1404
    assert est.stage("evaluation").work["yes_no"] == 16_016
    bench["amber_query_file"] = "query_discriminative.json"
    est = estimate_run(config(TOY | {"eval": {"benchmarks": bench}}))
    assert est.stage("evaluation").work["descriptions"] == 400


def test_bad_figures_name_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("estimate:\n  sampling_tokens_per_s: 0\n")
    with pytest.raises(ConfigError, match=r"estimate: sampling_tokens_per_s must be > 0"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"estimate\.tokens_per_sec"):
        load_config(path, {"estimate.tokens_per_sec": 5})
    with pytest.raises(ConfigError, match="claims_per_answer must be >= 0"):
        EstimateConfig(claims_per_answer=-1)


def test_step_defaults_follow_the_training_code():
    from trl import DPOConfig as TRLDPOConfig

    from mmrlaif.training.dpo import DEFAULT_DPO_ARGS

    fields = {f.name: f.default for f in dataclasses.fields(TRLDPOConfig)}
    for key, value in DPO_STEP_DEFAULTS.items():
        assert DEFAULT_DPO_ARGS.get(key, fields[key]) == value, key


def test_presets_estimate():
    for preset in sorted((ROOT / "configs").rglob("*.yaml")):
        if "overlays" not in preset.parts:
            assert estimate_run(load_config(preset), prompts=100).stages, preset


def test_cli_table_and_json(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(TOY))
    assert main(["estimate", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == (
        "estimate for mmrlaif (rlaifv): 3 iteration(s), 1,000 prompts per iteration"
    )
    row = next(line for line in lines if line.startswith("sampling"))
    # 3 runs, 1 GPU, 600 s = 0.17 GPU-h per run, 1800 s = 0.50 GPU-h and hours in all
    assert " ".join(row.split()) == (
        "sampling 1,000 prompts, 10,000 samples, 1.2M tokens 3 1 0.17 0.50 0.50"
    )
    total = next(line for line in lines if line.startswith("total"))
    assert total.split() == ["total", "6.60", "6.60"]  # 23,768 s
    assert "estimate.sampling_tokens_per_s = 2000" in out

    assert main(["estimate", "--config", str(path), "--prompts", "10", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["prompts"] == 10 and data["prompts_source"] == "--prompts"
    assert [s["name"] for s in data["stages"]] == ["sampling", "labeling", "dpo", "evaluation"]
    assert data["stages"][0]["work"]["tokens"] == 12_000
    assert data["total_gpu_hours"] == pytest.approx(
        sum(s["total_gpu_hours"] for s in data["stages"])
    )


def test_cli_errors(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  align_prompts: s3://b/p.parquet\n")
    assert main(["estimate", "--config", str(path)]) == 2
    assert "set data.limit or pass --prompts N" in capsys.readouterr().err
    args = ["estimate", "--config", str(path), "--prompts", "5"]
    assert main([*args, "--set", "estimate.dpo_pairs_per_s=0"]) == 2
    assert "estimate: dpo_pairs_per_s must be > 0" in capsys.readouterr().err


def test_sampling_on_an_endpoint_is_server_work():
    data = TOY | {
        "sampling": {"backend": "openai", "endpoint": "http://policy:8000/v1"},
        "estimate": {"sampling_tokens_per_s": 6000, "sampling_server_gpus": 2},
    }
    sampling = estimate_run(config(data)).stage("sampling")
    # 1.2M tokens / 6000 tok/s = 200 GPU-s on the server, 100 s on its 2 GPUs, while the
    # sampling task holds its 1 GPU: 200 + 100 = 300 GPU-s
    assert (sampling.gpus, sampling.server_gpus) == (1, 2)
    assert sampling.wall_hours == pytest.approx(100 / H)
    assert sampling.gpu_hours == pytest.approx(300 / H)
