import pytest

from mmrlaif.evaluation.select import metric_value, object_f1, select_policy


def test_object_f1_by_hand():
    # precision 1 - 0.2 = 0.8, recall 0.6: 2 * 0.48 / 1.4
    assert object_f1(0.2, 0.6) == pytest.approx(0.96 / 1.4)
    assert object_f1(1.0, 0.0) == 0.0


def test_saying_less_does_not_win_on_object_f1():
    incumbent = {"chair_i": 0.10, "cover": 0.95}  # f1 = 2*.9*.95/1.85 = 0.9243
    silent = {"chair_i": 0.0, "cover": 0.50}  # f1 = 2*1*.5/1.5 = 0.6667
    decision = select_policy("object_f1", silent, incumbent)
    assert not decision.keep_new
    assert decision.new == pytest.approx(2 / 3) and decision.incumbent == pytest.approx(1.71 / 1.85)
    assert select_policy("chair_i", silent, incumbent).keep_new


def test_tie_keeps_the_incumbent_and_bad_input_is_named():
    h = {"chair_i": 0.1, "cover": 0.9, "chair_s": 0.2}
    assert not select_policy("cover", h, h).keep_new
    with pytest.raises(ValueError, match="unknown selection metric 'pope'"):
        metric_value("pope", h)
    with pytest.raises(ValueError, match="lacks 'cover'"):
        metric_value("object_f1", {"chair_i": 0.1})


def test_latest_always_carries_the_new_policy_forward():
    incumbent = {"chair_i": 0.10, "cover": 0.95}  # f1 = 0.9243
    worse = {"chair_i": 0.0, "cover": 0.50}  # f1 = 0.6667
    decision = select_policy("latest", worse, incumbent)
    assert decision.keep_new and decision.metric == "latest"
    assert decision.new == pytest.approx(2 / 3) and decision.incumbent == pytest.approx(1.71 / 1.85)
    assert "latest" in decision.reason
