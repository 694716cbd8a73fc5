"""Tests for CHAIR and POPE, with expected values worked out by hand."""

from __future__ import annotations

import json

import pytest

from mmrlaif.evaluation.metrics import (
    ObjectHalResult,
    PopeResult,
    object_hallucination,
    parse_yes_no,
    pope,
    pope_from_answers,
)
from mmrlaif.lexicon import Lexicon, UnknownObjectError


@pytest.fixture
def lexicon() -> Lexicon:
    return Lexicon(
        synonyms={
            "cup": ["mug"],
            "dog": ["puppy"],
            "cat": ["kitten"],
            "table": [],
            "ball": ["tennis ball"],
        },
        exclusions=["hot dog"],
    )


# ----------------------------------------------------------------------------- CHAIR


def test_chair_hand_example(lexicon: Lexicon) -> None:
    responses = [
        # mentions {dog, cup, cat} (dog twice, via "puppy": counted once); gt {dog, cup}
        # -> 3 mentions, 1 hallucinated (cat); covers dog, cup
        "A dog and a puppy drink from a mug next to a cat.",
        # mentions {table}; gt {table, ball} -> 1 mention, 0 hallucinated; covers table
        "An empty table.",
        # no mentions (the hot dog is an exclusion); gt {dog}
        # -> left out of the RespHal denominator; covers nothing
        "A hot dog.",
        # mentions {ball, dog}; gt {cat} -> 2 mentions, 2 hallucinated; covers nothing
        "A tennis ball and dogs.",
    ]
    ground_truth = [["dog", "Mugs"], ["table", "ball"], ["puppy"], ["kitten", "cat"]]

    result = object_hallucination(responses, ground_truth, lexicon)

    n_mentions = 3 + 1 + 0 + 2  # = 6
    n_hallucinated = 1 + 0 + 0 + 2  # = 3
    assert result.n_mentions == n_mentions
    assert result.n_hallucinated == n_hallucinated
    assert result.object_hal == pytest.approx(3 / 6)
    # 3 responses mention something; responses 0 and 3 hallucinate -> 2/3
    assert result.n_responses == 4
    assert result.n_responses_with_mentions == 3
    assert result.response_hal == pytest.approx(2 / 3)
    # gt objects: 2 + 2 + 1 + 1 (cat and kitten are one object) = 6; covered: 2 + 1 + 0 + 0 = 3
    assert result.n_gt_objects == 6
    assert result.n_gt_covered == 3
    assert result.cover == pytest.approx(3 / 6)
    assert result.hallucinated_by_object == {"ball": 1, "cat": 1, "dog": 1}


def test_chair_duplicate_mentions_counted_once_per_response(lexicon: Lexicon) -> None:
    # cat mentioned 3 times, dog twice; gt {dog}: 2 distinct mentions, 1 hallucinated -> 1/2
    result = object_hallucination(["cat, kitten, cats, a dog and a puppy"], [["dog"]], lexicon)
    assert (result.n_mentions, result.n_hallucinated) == (2, 1)
    assert result.object_hal == pytest.approx(1 / 2)
    assert result.response_hal == 1.0
    assert result.hallucinated_by_object == {"cat": 1}


def test_chair_no_hallucination(lexicon: Lexicon) -> None:
    result = object_hallucination(["A cup on a table."], [["cup", "table", "dog"]], lexicon)
    assert result.object_hal == 0.0
    assert result.response_hal == 0.0
    assert result.cover == pytest.approx(2 / 3)  # cup, table of {cup, table, dog}
    assert result.hallucinated_by_object == {}


def test_chair_edge_cases_are_zero(lexicon: Lexicon) -> None:
    empty = object_hallucination([], [], lexicon)
    assert (empty.object_hal, empty.response_hal, empty.cover, empty.n_responses) == (
        0.0,
        0.0,
        0.0,
        0,
    )

    # No mentions anywhere and no ground truth at all.
    result = object_hallucination(["Nothing to see.", ""], [[], []], lexicon)
    assert (result.object_hal, result.response_hal, result.cover) == (0.0, 0.0, 0.0)
    assert result.n_responses == 2
    assert result.n_responses_with_mentions == 0


def test_chair_unknown_ground_truth_names_index_and_object(lexicon: Lexicon) -> None:
    with pytest.raises(UnknownObjectError, match=r"item 1.*'zebra'"):
        object_hallucination(["a cup", "a dog"], [["cup"], ["dog", "zebra"]], lexicon)


def test_chair_length_mismatch(lexicon: Lexicon) -> None:
    with pytest.raises(ValueError, match="2 responses but 1"):
        object_hallucination(["a cup", "a dog"], [["cup"]], lexicon)


def test_chair_ground_truth_must_not_be_a_string(lexicon: Lexicon) -> None:
    with pytest.raises(ValueError, match="item 0"):
        object_hallucination(["a cup"], ["cup"], lexicon)


def test_chair_to_dict_is_json(lexicon: Lexicon) -> None:
    result = object_hallucination(["a cat"], [["dog"]], lexicon)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["object_hal"] == 1.0
    assert data["hallucinated_by_object"] == {"cat": 1}
    assert ObjectHalResult(**data) == result


# ----------------------------------------------------------------------------- POPE


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("No, there is not.", False),
        ("Yes.", True),
        ("yes", True),
        ("There is not a cup", False),
        ("  NO  ", False),
        ("No!", False),
        ("I think so", True),  # no yes/no word -> yes, as POPE
        ("Yes. There is no dog though.", True),  # only the first sentence counts
        ("There isn't a cup.", True),  # "isn't" is not the word "not", as in POPE
        ("Nothing there.", True),  # whole words only
        ("", True),
    ],
)
def test_parse_yes_no(answer: str, expected: bool) -> None:
    assert parse_yes_no(answer) is expected


def test_pope_hand_confusion_matrix() -> None:
    #            label: yes   yes   yes   yes    no     no     no     no     no     no
    predictions = [True, True, True, False, True, False, False, False, False, True]
    labels = [True, True, True, True, False, False, False, False, False, False]
    result = pope(predictions, labels)
    # tp = 3, fn = 1, fp = 2, tn = 4
    assert (result.tp, result.fn, result.fp, result.tn) == (3, 1, 2, 4)
    assert result.n == 10
    assert result.accuracy == pytest.approx((3 + 4) / 10)
    precision = 3 / (3 + 2)  # 0.6
    recall = 3 / (3 + 1)  # 0.75
    assert result.precision == pytest.approx(precision)
    assert result.recall == pytest.approx(recall)
    assert result.f1 == pytest.approx(2 * precision * recall / (precision + recall))  # 2/3
    # yes_ratio is over predictions: 5 of 10 predicted yes (labels have 4 of 10 yes)
    assert result.yes_ratio == pytest.approx(5 / 10)
    assert result.n_unparsed == 0


def test_pope_from_answers_counts_unparsed() -> None:
    answers = ["Yes.", "No, there is not.", "I think so", "There is not a cup", "Maybe"]
    labels = [True, False, False, True, True]
    result = pope_from_answers(answers, labels)
    # predictions: yes, no, yes, no, yes -> tp = 2 (0, 4), fp = 1 (2), tn = 1 (1), fn = 1 (3)
    assert (result.tp, result.fp, result.tn, result.fn) == (2, 1, 1, 1)
    assert result.accuracy == pytest.approx(3 / 5)
    assert result.precision == pytest.approx(2 / 3)
    assert result.recall == pytest.approx(2 / 3)
    assert result.yes_ratio == pytest.approx(3 / 5)
    assert result.n_unparsed == 2  # "I think so", "Maybe"


def test_pope_all_no_predictions() -> None:
    result = pope([False, False], [True, False])
    # no predicted positives -> precision 0.0; tp = 0 -> recall 0/1 = 0.0; p + r = 0 -> f1 0.0
    assert (result.precision, result.recall, result.f1) == (0.0, 0.0, 0.0)
    assert result.accuracy == pytest.approx(1 / 2)
    assert result.yes_ratio == 0.0


def test_pope_no_positive_labels() -> None:
    result = pope([True, False], [False, False])
    # tp = 0, fp = 1 -> precision 0/1; no positive labels -> recall 0.0
    assert (result.precision, result.recall, result.f1) == (0.0, 0.0, 0.0)
    assert result.yes_ratio == pytest.approx(1 / 2)


def test_pope_perfect_and_empty() -> None:
    perfect = pope([True, False], [True, False])
    assert (perfect.accuracy, perfect.precision, perfect.recall, perfect.f1) == (1.0,) * 4
    empty = pope([], [])
    assert (empty.accuracy, empty.f1, empty.yes_ratio, empty.n) == (0.0, 0.0, 0.0, 0)


def test_pope_length_mismatch() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 labels"):
        pope([True, False], [True])
    with pytest.raises(ValueError):
        pope_from_answers(["yes"], [True, False])


def test_pope_to_dict_is_json() -> None:
    result = pope([True], [True])
    data = json.loads(json.dumps(result.to_dict()))
    assert PopeResult(**data) == result
