import pytest

from mmrlaif.evaluation.select import (
    best_candidate,
    metric_value,
    object_f1,
    select_policy,
)
from mmrlaif.steps.select import select_step


def test_object_f1_by_hand():
    # precision 1 - 0.2 = 0.8, recall 0.6: 2 * 0.48 / 1.4
    assert object_f1(0.2, 0.6) == pytest.approx(0.96 / 1.4)
    assert object_f1(1.0, 0.0) == 0.0


def test_saying_less_does_not_win_on_object_f1():
    incumbent = {"object_hal": 0.10, "cover": 0.95}  # f1 = 2*.9*.95/1.85 = 0.9243
    silent = {"object_hal": 0.0, "cover": 0.50}  # f1 = 2*1*.5/1.5 = 0.6667
    decision = select_policy("object_f1", silent, incumbent)
    assert not decision.keep_new
    assert decision.new == pytest.approx(2 / 3) and decision.incumbent == pytest.approx(1.71 / 1.85)
    assert select_policy("object_hal", silent, incumbent).keep_new


def test_tie_keeps_the_incumbent_and_bad_input_is_named():
    h = {"object_hal": 0.1, "cover": 0.9, "response_hal": 0.2}
    assert not select_policy("cover", h, h).keep_new
    with pytest.raises(ValueError, match="unknown selection metric 'pope'"):
        metric_value("pope", h)
    with pytest.raises(ValueError, match="figures lack 'cover'"):
        metric_value("object_f1", {"object_hal": 0.1})


def test_latest_always_carries_the_new_policy_forward():
    incumbent = {"object_hal": 0.10, "cover": 0.95}  # f1 = 0.9243
    worse = {"object_hal": 0.0, "cover": 0.50}  # f1 = 0.6667
    decision = select_policy("latest", worse, incumbent)
    assert decision.keep_new and decision.metric == "latest"
    assert decision.new == pytest.approx(2 / 3) and decision.incumbent == pytest.approx(1.71 / 1.85)
    assert "latest" in decision.reason


def test_benchmark_object_f1_by_hand():
    # AMBER: CHAIR 0.25 (precision 0.75), Cover 0.5: 2 * 0.375 / 1.25 = 0.6
    assert metric_value("amber_object_f1", {"amber_chair": 0.25, "amber_cover": 0.5}) == (
        pytest.approx(0.6)
    )
    halbench = {
        "object_halbench_mention_hallucination_rate": 0.5,
        "object_halbench_object_recall": 0.5,
    }
    assert metric_value("object_halbench_object_f1", halbench) == pytest.approx(0.5)
    # a rate is lower-better: 0.2 beats 0.3
    new, old = {"mmhal_hallucination_rate": 0.2}, {"mmhal_hallucination_rate": 0.3}
    assert select_policy("mmhal_hallucination_rate", new, old).keep_new


def test_best_candidate_prefers_the_best_figure_and_on_ties_the_later():
    figures = {
        "step-2": {"amber_chair": 0.10, "amber_cover": 0.9},  # f1 0.9
        "step-4": {"amber_chair": 0.50, "amber_cover": 0.9},  # f1 0.643
        "final": {"amber_chair": 0.10, "amber_cover": 0.9},  # f1 0.9: a tie, the later wins
    }
    assert best_candidate("amber_object_f1", figures) == "final"
    assert best_candidate("amber_chair", {**figures, "final": {"amber_chair": 0.2}}) == "step-2"
    assert best_candidate("latest", figures) == "final"


def test_select_step_carries_the_winning_checkpoint_forward(tmp_path):
    import json

    def model(folder, tag):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"tag": tag}))

    new_run, old_run = tmp_path / "new", tmp_path / "old"
    model(new_run / "model", "final")
    model(new_run / "candidates" / "step-3", "step-3")
    model(old_run / "model", "incumbent")
    new_rep, old_rep = tmp_path / "new_rep", tmp_path / "old_rep"
    for folder, best, chair in ((new_rep, "step-3", 0.1), (old_rep, "final", 0.3)):
        folder.mkdir()
        figures = {best: {"amber_chair": chair, "amber_cover": 0.8}}
        (folder / "select.json").write_text(json.dumps({"figures": figures, "best": best}))
    decision = select_step(
        "amber_object_f1", new_run, new_rep, old_run, old_rep, tmp_path / "o", tmp_path / "r"
    )
    assert decision.keep_new and decision.candidate == "step-3"
    assert json.loads((tmp_path / "o" / "model" / "config.json").read_text())["tag"] == "step-3"
    assert "held-out amber_object_f1" in decision.reason
