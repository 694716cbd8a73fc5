"""The ablation runner's pieces: variant configs, the summary (figures derived by hand) and
its outputs. The runner end to end: tests/integration/test_ablation.py."""

from pathlib import Path

import pytest

from mmrlaif.ablation import (
    VARIANTS,
    AblationRun,
    expected_cost,
    markdown_table,
    needs_checker,
    summarize,
    variant_config,
    write_results,
)
from mmrlaif.ablation.variants import checker_config
from mmrlaif.config import ConfigError, load_config

PRESET = Path(__file__).resolve().parents[2] / "configs" / "tiny_cpu.yaml"


def test_variants_change_only_what_they_name(tmp_path):
    cfg = load_config(PRESET)  # 3 iterations, n = 8, <= 2 pairs per prompt, frozen labeler
    it = variant_config(cfg, "iterative", 4, tmp_path, None)
    assert (it.run.seed, it.sampling.seed, it.pairs.seed, it.model.seed) == (4, 4, 4, 4)
    assert it.run.output_dir == str(tmp_path / "seed4" / "iterative")
    assert (it.pipeline, it.labeling, it.dpo) == (cfg.pipeline, cfg.labeling, cfg.dpo)
    one = variant_config(cfg, "one_shot", 4, tmp_path, tmp_path / "base")
    # one iteration with 3 x 8 samples and 3 x 2 pairs per prompt: about the same pair budget
    assert (one.pipeline.iterations, one.sampling.n, one.pairs.max_pairs_per_prompt) == (1, 24, 6)
    assert one.model.name_or_path == str(tmp_path / "base")  # the seed's shared base policy
    assert variant_config(cfg, "self_labeler", 0, tmp_path, None).labeling.labeler == "policy"
    plain = variant_config(cfg, "dpo_only", 0, tmp_path, None).dpo.trainer
    assert (plain["loss_type"], plain["loss_weights"]) == (["sigmoid"], [1.0])
    assert variant_config(cfg, "povid", 0, tmp_path, None).pipeline.method == "povid"
    replay = variant_config(cfg, "self_labeler_replay", 0, tmp_path, None)
    assert (replay.labeling.labeler, replay.pairs.replay_yesno) == ("policy", 100)
    both = variant_config(cfg, "rlaifv_povid", 0, tmp_path, None)
    assert both.pairs.add_povid and both.pipeline.method == "rlaifv" and not cfg.pairs.add_povid
    # run order: per iteration samples (RLAIF-V) + 16 (POVID pairs) + 8, times iterations
    costs = {
        v: expected_cost(variant_config(cfg, v, 0, tmp_path, None))
        for v in ("iterative", "one_shot", "povid", "rlaifv_povid")
    }
    assert costs == {"iterative": 48, "one_shot": 32, "povid": 72, "rlaifv_povid": 96}
    with pytest.raises(ConfigError, match="unknown ablation variant 'both'"):
        variant_config(cfg, "both", 0, tmp_path, None)


def test_the_strong_labeler_variants_label_with_the_world_checker(tmp_path):
    cfg = load_config(PRESET)
    checker = tmp_path / "checker" / "model"
    strong = variant_config(cfg, "strong_labeler", 1, tmp_path, tmp_path / "base", checker)
    assert (strong.labeling.labeler, strong.labeling.labeler_name_or_path) == (
        "model",
        str(checker),
    )
    assert strong.labeling.reject_threshold == 0.5  # RLAIF-V's P(no) >= P(yes)
    assert (strong.pipeline, strong.dpo, strong.sampling.n) == (cfg.pipeline, cfg.dpo, 8)
    once = variant_config(cfg, "strong_labeler_one_shot", 1, tmp_path, None, checker)
    assert (once.pipeline.iterations, once.sampling.n, once.labeling.labeler) == (1, 24, "model")
    assert [v for v in VARIANTS if needs_checker(v)] == [
        "strong_labeler",
        "strong_labeler_one_shot",
    ]
    # the checker's own fine-tuning: the preset's world and model, more yes/no, deeper decoder
    ccfg = checker_config(cfg, tmp_path)
    assert ccfg.world.yesno_per_image == 12 and cfg.world.yesno_per_image == 2
    assert ccfg.model.tiny.text_layers == 2 * cfg.model.tiny.text_layers
    assert (ccfg.world.seed, ccfg.model.seed, ccfg.sft) == (cfg.world.seed, cfg.model.seed, cfg.sft)
    assert ccfg.run.output_dir == str(tmp_path / "checker")
    text = markdown_table([], {"pope_adversarial_accuracy": 0.95})
    assert text.endswith("\nStrong labeler: POPE adversarial accuracy 95.00 (eval split).\n")


def _h(object_hal: float, cover: float) -> dict:
    return {
        "object_hal": object_hal,
        "response_hal": 2 * object_hal,
        "cover": cover,
        "pope_adversarial_accuracy": 0.9,
    }


def test_summary_by_hand(tmp_path):
    runs = [
        AblationRun(
            "iterative", 0, [_h(0.10, 0.96), _h(0.06, 0.95), _h(0.04, 0.95)], [30, 20], 10, ""
        ),
        AblationRun(
            "iterative", 1, [_h(0.12, 0.96), _h(0.08, 0.96), _h(0.09, 0.94)], [10, 40], 14, ""
        ),
        AblationRun("one_shot", 0, [_h(0.10, 0.96), _h(0.05, 0.90)], [55], 8, ""),
    ]
    [iterative, one_shot] = summarize(runs)
    # final ObjHal 0.04 and 0.09: mean 0.065, sd sqrt(((-.025)^2 + .025^2) / 1) = 0.035355
    assert iterative["object_hal"]["mean"] == pytest.approx(0.065)
    assert iterative["object_hal"]["sd"] == pytest.approx(0.0353553, rel=1e-5)
    # relative change: 0.04/0.10 - 1 = -0.6 and 0.09/0.12 - 1 = -0.25 -> mean -0.425
    assert iterative["object_hal_change"]["mean"] == pytest.approx(-0.425)
    assert iterative["pairs_total"]["mean"] == 50  # 30 + 20 and 10 + 40
    assert iterative["falls_every_iteration"] == 1  # seed 1 rose from 0.08 to 0.09
    assert one_shot["seeds"] == 1 and one_shot["object_hal"]["sd"] == 0.0
    text = markdown_table([iterative, one_shot])
    assert "| iterative | 2 | 6.50 ± 3.54 | -42.5% |" in text
    assert "| one_shot | 1 | 5.00 ± 0.00 | -50.0% |" in text
    md = write_results(runs, tmp_path)
    assert md.read_text() == text
    assert (tmp_path / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "results.json").is_file()
