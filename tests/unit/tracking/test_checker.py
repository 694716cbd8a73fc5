"""Which model checked an iteration's answers, and its POPE adversarial accuracy."""

from mmrlaif.config import Config, from_dict
from mmrlaif.tracking.records import checker_accuracy

HISTORY = [
    {"iteration": 0, "headline": {"pope_adversarial_accuracy": 0.92}},
    {"iteration": 1, "headline": {"pope_adversarial_accuracy": 0.89}},
]


def _cfg(labeler: str) -> Config:
    extra = {"labeler_name_or_path": "/m"} if labeler == "model" else {}
    return from_dict(Config, {"labeling": {"labeler": labeler, **extra}})


def test_the_checker_is_the_frozen_start_or_the_policy_carried_forward():
    # iteration 2 is labeled by the frozen iteration-0 policy (0.92) or by iteration 1's (0.89)
    assert checker_accuracy(_cfg("initial"), HISTORY) == 0.92
    assert checker_accuracy(_cfg("policy"), HISTORY) == 0.89
    assert checker_accuracy(_cfg("policy"), HISTORY[:1]) == 0.92  # iteration 1: the base
    assert checker_accuracy(_cfg("model"), HISTORY) is None  # a separate labeler: not measured
    assert checker_accuracy(_cfg("initial"), []) is None
    assert checker_accuracy(_cfg("initial"), [{"headline": {}}]) is None  # no POPE measured
