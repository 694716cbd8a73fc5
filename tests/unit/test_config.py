from pathlib import Path

import pytest

from mmrlaif.config import (
    Config,
    ConfigError,
    EvalConfig,
    WorldConfig,
    from_dict,
    load_config,
    load_yaml,
    to_dict,
)

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_presets_load_alone_and_with_the_continual_overlay():
    overlays = sorted((ROOT / "configs" / "overlays").glob("*.yaml"))
    presets = [p for p in sorted((ROOT / "configs").rglob("*.yaml")) if p not in overlays]
    assert len(presets) >= 4 and overlays
    for preset in presets:
        cfg = load_config(preset)
        assert isinstance(cfg, Config), preset
        for overlay in overlays:
            merged = load_config([preset, overlay])
            assert merged.data.prompts_prefix and merged.model.name_or_path.startswith("models:/")
            assert merged.pipeline == cfg.pipeline  # the rest of the preset is kept


def test_unknown_top_level_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key\(s\): wrld"):
        load_config(write(tmp_path, "wrld: {}\n"))


def test_unknown_nested_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"world\.n_trian"):
        load_config(write(tmp_path, "world:\n  n_trian: 3\n"))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("world:\n  n_train: '3'\n", "world.n_train"),
        ("world:\n  n_train: 3.5\n", "world.n_train"),
        ("world:\n  n_train: true\n", "world.n_train"),
        ("model:\n  trust_remote_code: 'yes'\n", "model.trust_remote_code"),
        ("model:\n  dtype: float64\n", "model.dtype"),
        ("world:\n  object_size: [12]\n", "world.object_size"),
        ("eval:\n  pope_categories: random\n", "eval.pope_categories"),
        ("sft:\n  trainer: [1, 2]\n", "sft.trainer"),
        ("model:\n  tiny:\n    text_layers: two\n", "model.tiny.text_layers"),
        ("labeling:\n  extractor: magic\n", "labeling.extractor"),
        ("labeling:\n  labeler: gpt\n", "labeling.labeler"),
        ("sampling:\n  backend: vllm\n", "sampling.backend"),
    ],
)
def test_wrong_type_names_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(write(tmp_path, text))


def test_values_are_coerced_and_frozen(tmp_path):
    cfg = load_config(
        write(
            tmp_path, "world:\n  partner_prob: 1\n  object_size: [10, 14]\neval:\n  limit: null\n"
        )
    )
    assert cfg.world.partner_prob == 1.0 and isinstance(cfg.world.partner_prob, float)
    assert cfg.world.object_size == (10, 14)
    assert cfg.eval.limit is None
    with pytest.raises(AttributeError):
        cfg.world.seed = 3  # type: ignore[misc]


def test_overrides_apply_and_are_checked(tmp_path):
    path = write(tmp_path, "world:\n  n_train: 5\n")
    cfg = load_config(path, {"world.n_train": 9, "eval.limit": 4})
    assert cfg.world.n_train == 9 and cfg.eval.limit == 4
    with pytest.raises(ConfigError, match=r"world\.nope"):
        load_config(path, {"world.nope": 1})


def test_round_trip_through_plain_data():
    cfg = Config(world=WorldConfig(seed=3), eval=EvalConfig(pope_categories=("random",)))
    assert from_dict(Config, to_dict(cfg)) == cfg


def test_unreadable_yaml_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(write(tmp_path, "world: [unclosed\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- 1\n"))


def test_check_local_paths_skips_names_an_endpoint_serves(tmp_path) -> None:
    from mmrlaif.config import LabelingConfig, check_local_paths

    missing = str(tmp_path / "no-such-model")
    cfg = Config(labeling=LabelingConfig(labeler="model", labeler_name_or_path=missing))
    with pytest.raises(ConfigError, match="labeling.labeler_name_or_path: no such model folder"):
        check_local_paths(cfg)
    served = LabelingConfig(labeler="openai", labeler_name_or_path=missing, endpoint="http://x")
    check_local_paths(Config(labeling=served))
    llm = LabelingConfig(extractor="llm", llm_name_or_path=missing)
    with pytest.raises(ConfigError, match="labeling.llm_name_or_path"):
        check_local_paths(Config(labeling=llm))
    check_local_paths(
        Config(labeling=LabelingConfig(llm_name_or_path=missing, llm_endpoint="http://x"))
    )


def test_platform_sections_validate() -> None:
    with pytest.raises(ConfigError, match="kfp.schedule: cron .* must have 6 fields"):
        from_dict(Config, {"kfp": {"schedule": {"cron": "0 3 * * 1"}}})
    with pytest.raises(ConfigError, match="kubernetes.gpu: accelerator_limit must be >= 0"):
        from_dict(Config, {"kubernetes": {"gpu": {"accelerator_limit": -1}}})
    with pytest.raises(ConfigError, match="kubernetes.trainjob: staging_uri must be s3://"):
        from_dict(Config, {"kubernetes": {"trainjob": {"staging_uri": "/tmp/x"}}})
    with pytest.raises(ConfigError, match="unknown config key.*kubernetes.gpu.gpus"):
        from_dict(Config, {"kubernetes": {"gpu": {"gpus": 1}}})
    cfg = from_dict(Config, {"kubernetes": {"gpu": {"tolerations": [{"key": "pool"}]}}})
    assert cfg.kubernetes.gpu.tolerations[0].operator == "Exists"


def test_overlay_files_merge_sections_and_replace_lists(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(
        "kubernetes:\n"
        "  gpu: {accelerator_limit: 4, tolerations: [{key: pool}]}\n"
        "  image_registry: reg.io/ml\n"
        "sampling: {n: 7}\n"
    )
    top = tmp_path / "top.yaml"
    top.write_text("sampling: {temperature: 0.3}\n")
    base = load_config(ROOT / "configs" / "tiny_cpu.yaml")
    cfg = load_config([ROOT / "configs" / "tiny_cpu.yaml", site, top], {"sampling.n": 9})
    # merged key by key: untouched keys of a section keep the preset's value
    assert cfg.kubernetes.gpu.memory_limit == base.kubernetes.gpu.memory_limit
    assert cfg.kubernetes.gpu.accelerator_limit == 4
    assert [t.key for t in cfg.kubernetes.gpu.tolerations] == ["pool"]  # lists replace
    assert cfg.kubernetes.image_registry == "reg.io/ml"
    assert (cfg.sampling.n, cfg.sampling.temperature) == (9, 0.3)  # overrides come last
    assert cfg.sampling.max_new_tokens == base.sampling.max_new_tokens
    (tmp_path / "bad.yaml").write_text("kubernetes: {gpu: {acclerator_limit: 1}}\n")
    with pytest.raises(ConfigError, match="acclerator_limit"):
        load_config([ROOT / "configs" / "tiny_cpu.yaml", tmp_path / "bad.yaml"])
    with pytest.raises(ConfigError, match="no config file"):
        load_config([])


def test_exponent_floats_read_as_numbers_in_files_and_overrides(tmp_path):
    # PyYAML (YAML 1.1) reads "1e-4" as a string, which reached the optimizer as one
    path = write(tmp_path, "dpo:\n  trainer:\n    learning_rate: 1e-4\n")
    assert load_config(path).dpo.trainer["learning_rate"] == 1e-4
    from mmrlaif.cli import _overrides

    assert _overrides(["dpo.trainer.learning_rate=3e-4", "run.output_dir=1e4x"]) == {
        "dpo.trainer.learning_rate": 3e-4,
        "run.output_dir": "1e4x",
    }
    assert load_yaml('a: "1e-4"\nb: 2E5\nc: 7') == {"a": "1e-4", "b": 2e5, "c": 7}


def test_reject_threshold_is_a_share(tmp_path):
    path = write(tmp_path, "labeling:\n  reject_threshold: 0.9\n")
    assert load_config(path).labeling.reject_threshold == 0.9
    with pytest.raises(ConfigError, match="reject_threshold must be in"):
        load_config(path, {"labeling.reject_threshold": 1.5})


def _real_presets() -> list[Path]:
    """The cluster presets: every YAML under configs/<model>/ that is not a tiny twin."""
    return [
        p
        for p in sorted((ROOT / "configs").glob("*/*.yaml"))
        if p.parent.name not in ("overlays", "deepspeed") and not p.name.endswith(".tiny.yaml")
    ]


def test_every_real_preset_has_a_tiny_twin_of_its_own_family():
    presets = _real_presets()
    names = {p.parent.name for p in presets}
    assert {"llava15_7b", "qwen25vl_7b", "qwen3vl_8b", "gemma3_12b"} <= names
    families = {"llava15": "twin:llava", "qwen25vl": "twin:qwen2_5_vl"}
    families |= {"qwen3vl": "twin:qwen3_vl", "gemma3": "twin:gemma3"}
    for preset in presets:
        twin_path = preset.with_name(preset.stem + ".tiny.yaml")
        assert twin_path.is_file(), f"{preset} has no tiny twin"
        assert load_yaml(twin_path.read_text())["extends"] == preset.name
        real, twin = load_config(preset), load_config(twin_path)
        assert twin.model.name_or_path == families[preset.parent.name.split("_")[0]]
        # the twin is the same pipeline: method, LoRA or not, checkpointing, labeler kind
        assert twin.pipeline.method == real.pipeline.method
        assert (twin.dpo.lora is None) == (real.dpo.lora is None)
        assert twin.dpo.trainer.get("activation_checkpointing") == real.dpo.trainer.get(
            "activation_checkpointing"
        )
        assert twin.dpo.trainer["beta"] == real.dpo.trainer["beta"]
        assert twin.tracking == real.tracking and twin.kfp == real.kfp


def test_extends_merges_a_file_over_its_parent(tmp_path):
    (tmp_path / "base.yaml").write_text("sampling: {n: 7, temperature: 0.3}\nworld: {n_train: 9}\n")
    (tmp_path / "mid.yaml").write_text("extends: base.yaml\nsampling: {n: 2}\n")
    (tmp_path / "top.yaml").write_text("extends: mid.yaml\nworld: {n_eval: 3}\n")
    cfg = load_config(tmp_path / "top.yaml")
    assert (cfg.sampling.n, cfg.sampling.temperature) == (2, 0.3)
    assert (cfg.world.n_train, cfg.world.n_eval) == (9, 3)
    (tmp_path / "loop.yaml").write_text("extends: loop2.yaml\n")
    (tmp_path / "loop2.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "loop.yaml")
    (tmp_path / "gone.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        load_config(tmp_path / "gone.yaml")


def test_twin_sources_are_checked_at_load(tmp_path):
    assert load_config(write(tmp_path, "model: {name_or_path: 'twin:gemma3@2'}\n")).model
    with pytest.raises(ConfigError, match=r"model.name_or_path: 'twin:blip2'.*qwen2_5_vl"):
        load_config(write(tmp_path, "model: {name_or_path: 'twin:blip2'}\n"))


def test_llava_presets_carry_the_reference_dpo_settings():
    for name in ("rlaifv", "rlaifv_self"):
        cfg = load_config(ROOT / "configs" / "llava15_7b" / f"{name}.yaml")
        t = cfg.dpo.trainer
        # script/train/llava15_train.sh: 1 per GPU on 8 GPUs, no accumulation (global 8)
        assert cfg.dpo.global_batch_size == 8 == t["per_device_train_batch_size"] * 8
        assert t.get("gradient_accumulation_steps", 1) == 1
        assert (t["learning_rate"], t["beta"], t["num_train_epochs"]) == (5e-7, 0.1, 4)
        assert (t["lr_scheduler_type"], t["warmup_steps"], t["weight_decay"]) == (
            "cosine",
            0.05,
            0.01,
        )


def test_global_batch_is_checked_against_devices_and_accumulation():
    from mmrlaif.config import DPO_PER_DEVICE_DEFAULT
    from mmrlaif.training.dpo import DEFAULT_DPO_ARGS

    assert DEFAULT_DPO_ARGS["per_device_train_batch_size"] == DPO_PER_DEVICE_DEFAULT
    tiny = ROOT / "configs" / "tiny_cpu.yaml"
    assert load_config(tiny, {"dpo.global_batch_size": 16}).dpo.global_batch_size == 16
    with pytest.raises(
        ConfigError,
        match=r"dpo.global_batch_size: 10 is not per_device_train_batch_size 16 x "
        r"gradient_accumulation_steps 1 x 1 GPU\(s\) = 16",
    ):
        load_config(tiny, {"dpo.global_batch_size": 10})
    llava = ROOT / "configs" / "llava15_7b" / "rlaifv.yaml"
    # moved to a 2 x 8 GPU TrainJob the same preset trains at 16: stated 8, an error
    with pytest.raises(ConfigError, match=r"x 16 GPU\(s\) = 16"):
        load_config(llava, {"kubernetes.trainjob": {"num_nodes": 2, "gpus_per_node": 8}})
    with pytest.raises(ConfigError, match=r"gradient_accumulation_steps 4 x 8 GPU\(s\) = 32"):
        load_config(llava, {"dpo.trainer.gradient_accumulation_steps": 4})


def test_selection_of_a_real_model_never_falls_back_to_the_toy_world(tmp_path):
    llava = ROOT / "configs" / "llava15_7b" / "rlaifv.yaml"
    cfg = load_config(llava)
    assert cfg.pipeline.select_metric == "amber_object_f1"  # a held-out slice of AMBER
    with pytest.raises(ConfigError, match=r"pipeline.select_metric: 'object_f1' is measured on"):
        load_config(llava, {"pipeline.select_metric": "object_f1"})
    assert load_config(llava, {"pipeline.select_metric": "latest", "pipeline.select_every": None})
    with pytest.raises(ConfigError, match=r"eval.benchmarks.run: a real model"):
        load_config(llava, {"eval.benchmarks.run": []})
    # its twin is not a real model: it selects on the toy world in AMBER's layout
    twin = load_config(ROOT / "configs" / "llava15_7b" / "rlaifv.tiny.yaml")
    assert twin.eval.benchmarks.data["amber"] == "toyworld"


def test_selection_keys_are_checked_at_load(tmp_path):
    tiny = ROOT / "configs" / "tiny_cpu.yaml"
    with pytest.raises(ConfigError, match=r"pipeline.select_metric: unknown metric 'pope'"):
        load_config(tiny, {"pipeline.select_metric": "pope"})
    with pytest.raises(ConfigError, match=r"eval.benchmarks.data.object_halbench: pipeline"):
        load_config(tiny, {"pipeline.select_metric": "object_halbench_object_f1"})
    with pytest.raises(ConfigError, match=r"eval.benchmarks.judge_endpoint: .*'mmhal_score'"):
        load_config(
            tiny,
            {"pipeline.select_metric": "mmhal_score", "eval.benchmarks.data": {"mmhal": "/x"}},
        )
    with pytest.raises(ConfigError, match=r"objhal_extractor llm needs an OpenAI-compatible"):
        load_config(tiny, {"eval.benchmarks.objhal_extractor": "llm"})
    with pytest.raises(ConfigError, match=r"amber_answer_rule"):
        load_config(tiny, {"eval.benchmarks.amber_answer_rule": "strict"})
    with pytest.raises(ConfigError, match=r"eval.benchmarks.data.pope: 'toyworld' .* amber only"):
        load_config(tiny, {"eval.benchmarks.data": {"pope": "toyworld"}})
    with pytest.raises(ConfigError, match=r"pipeline.select_every: checkpoints are weighed"):
        load_config(tiny, {"pipeline.select_every": 2})  # tiny_cpu selects 'latest'
    with pytest.raises(ConfigError, match=r"pipeline.select_every: a whole number"):
        load_config(tiny, {"pipeline.select_metric": "object_hal", "pipeline.select_every": 1.5})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pipeline.iterations": -1}, r"pipeline.iterations: must be >= 1, got -1"),
        ({"sampling.n": 1}, r"sampling.n: RLAIF-V pairs two candidates"),
        ({"sampling.n": 0}, r"sampling.n: must be >= 1, got 0"),
        ({"sampling.temperature": 0}, r"sampling.temperature: must be > 0"),
        ({"world.n_align": 0}, r"world.n_align: must be >= 1, got 0"),
        ({"world.n_train": -5}, r"world.n_train: must be >= 1, got -5"),
        ({"labeling.labeler": "model"}, r"labeling.labeler_name_or_path: labeler 'model'"),
        ({"labeling.labeler": "openai"}, r"labeling.labeler_name_or_path: labeler 'openai'"),
        (
            {"labeling.labeler": "openai", "labeling.labeler_name_or_path": "labeler"},
            r"labeling.endpoint: labeler 'openai' needs",
        ),
    ],
)
def test_values_that_would_fail_mid_run_are_errors_at_load(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(ROOT / "configs" / "tiny_cpu.yaml", overrides)
