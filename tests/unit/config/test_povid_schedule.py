"""POVID's schedule, its settings and the projector's learning rate, checked at load."""

from pathlib import Path

import pytest

from mmrlaif.config import ConfigError, POVIDStageConfig, load_config
from mmrlaif.config.povid import online_noise, povid_iteration

ROOT = Path(__file__).resolve().parents[3]
STAGES = [
    {"sources": ["povid_text"], "num_train_epochs": 3},
    {"sources": ["povid_text", "povid_noise"], "num_train_epochs": 1},
]


def _load(tmp_path, **overrides):
    path = tmp_path / "c.yaml"
    path.write_text("pipeline:\n  method: povid\n  iterations: 2\n")
    return load_config(path, overrides)


def test_iteration_i_runs_stage_i(tmp_path):
    cfg = _load(tmp_path, **{"povid.stages": STAGES, "dpo.trainer": {"learning_rate": 1e-7}})
    assert cfg.povid.stages == (
        POVIDStageConfig(("povid_text",), 3.0),
        POVIDStageConfig(("povid_text", "povid_noise"), 1.0),
    )
    one, two = povid_iteration(cfg, 1), povid_iteration(cfg, 2)
    assert one.povid.sources == ("povid_text",) and one.dpo.trainer["num_train_epochs"] == 3
    assert two.povid.sources == ("povid_text", "povid_noise")
    assert dict(two.dpo.trainer) == {"learning_rate": 1e-7, "num_train_epochs": 1}
    assert povid_iteration(two, 2) == two  # applying it again changes nothing
    # no stages: every iteration as configured
    plain = _load(tmp_path)
    assert povid_iteration(plain, 2) is plain
    with pytest.raises(ConfigError, match="no stage for iteration 3"):
        povid_iteration(cfg, 3)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"povid.stages": STAGES[:1]},
            r"povid\.stages: 1 stage\(s\) but pipeline\.iterations is 2",
        ),
        (
            {"povid.stages": STAGES, "pipeline.method": "rlaifv"},
            r"povid\.stages: .*pipeline\.method: povid",
        ),
        (
            {"povid.stages": [STAGES[0], {"sources": ["povid_noise", "gpt4v"]}]},
            r"povid\.stages\[1\]\.sources: unknown gpt4v",
        ),
        (
            {"povid.stages": [STAGES[0], {"num_train_epochs": 0}]},
            r"povid\.stages\[1\]\.num_train_epochs: must be > 0",
        ),
        ({"povid.stages": [STAGES[0], {"epochs": 1}]}, r"povid\.stages\[1\]\.epochs"),
        ({"povid.sources": []}, r"povid\.sources: empty"),
        ({"povid.noise_rejection": "both"}, r"povid\.noise_rejection: 'both' is not one of"),
        ({"povid.noise_ref_tokens": "mine"}, r"povid\.noise_ref_tokens"),
        ({"povid.noise_step": 1000}, r"povid\.noise_step: must be in \[0, 1000\)"),
        ({"povid.clamp_noise": "no"}, r"povid\.clamp_noise: expected true/false"),
        ({"dpo.projector_learning_rate": 0}, r"dpo\.projector_learning_rate: must be > 0"),
        (
            {"dpo.trainer": {"loss_type": ["sigmoid", "ipo"]}},
            r"dpo\.trainer\.loss_type: ipo with povid\.noise_rejection 'online'",
        ),
    ],
)
def test_a_bad_povid_setting_is_an_error_naming_its_key(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, **overrides)


def test_the_online_loss_check_applies_only_where_noise_is_built_online(tmp_path):
    ipo = {"dpo.trainer": {"loss_type": ["ipo"]}}
    assert not online_noise(_load(tmp_path, **ipo, **{"povid.noise_rejection": "offline"}))
    assert not online_noise(_load(tmp_path, **ipo, **{"povid.sources": ["povid_text"]}))
    assert not online_noise(_load(tmp_path, **ipo, **{"pipeline.method": "rlaifv"}))
    sft = {"dpo.trainer": {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 1.0]}}
    assert online_noise(_load(tmp_path, **sft))


def test_the_llava_povid_preset_is_the_references_schedule():
    cfg = load_config(ROOT / "configs/llava15_7b/povid.yaml")
    assert cfg.pipeline.method == "povid" and cfg.pipeline.iterations == 2
    assert [(s.sources, s.num_train_epochs) for s in cfg.povid.stages] == [
        (("povid_text",), 3.0),
        (("povid_text", "povid_noise"), 1.0),
    ]
    assert (cfg.povid.noise_rejection, cfg.povid.noise_step, cfg.povid.clamp_noise) == (
        "online",
        500,
        False,
    )
    assert (cfg.dpo.lora.r, cfg.dpo.lora.alpha, cfg.dpo.projector_learning_rate) == (128, 256, 2e-5)
    trainer = cfg.dpo.trainer
    assert (trainer["learning_rate"], trainer["warmup_steps"], trainer["beta"]) == (1e-7, 0.03, 0.1)
    assert cfg.dpo.global_batch_size == 8
    tiny = load_config(ROOT / "configs/llava15_7b/povid.tiny.yaml")
    assert tiny.model.name_or_path == "twin:llava" and len(tiny.povid.stages) == 2
    assert tiny.povid.stages[1].sources == ("povid_text", "povid_noise")
