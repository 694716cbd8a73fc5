"""POPE: question files and scoring, with expected values worked out by hand."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mmrlaif.evaluation.hallucination.common import (
    BenchmarkDataError,
    BenchmarkFormatError,
    DataRoot,
)
from mmrlaif.evaluation.hallucination.pope import (
    PopeItem,
    load_pope,
    load_pope_split,
    pope_reference_answer,
    score_pope,
)

# Answers to the fixture's random split (labels yes, no, yes, no, yes, no).
RANDOM_ANSWERS = [
    "Yes, there is a dog.",  # yes, label yes -> TP
    "No. There is no cat.",  # no,  label no  -> TN
    "There is not a car. Actually yes.",  # first sentence has "not" -> no, label yes -> FN
    "Yes.",  # yes, label no -> FP
    "I think so",  # no yes/no word: read as yes (unparsed), label yes -> TP
    "There isn't a bus, no.",  # "isn't" is not "not", but "no" is there -> no, label no -> TN
]


def test_load_pope(fixtures_dir: Path) -> None:
    splits = load_pope(DataRoot(fixtures_dir / "pope", "pope"))
    assert {k: len(v) for k, v in splits.items()} == {"random": 6, "popular": 2, "adversarial": 2}
    first = splits["random"][0]
    assert (first.question_id, first.image, first.label) == (
        1,
        "COCO_val2014_000000000001.jpg",
        True,
    )
    assert [i.label for i in splits["random"]] == [True, False] * 3
    query = first.query("random", "images")
    assert query.item == "pope/random/1"
    assert query.image_path == "images/COCO_val2014_000000000001.jpg"
    assert query.prompt == "Is there a dog in the image?"


def test_score_hand_example(fixtures_dir: Path) -> None:
    items = load_pope(DataRoot(fixtures_dir / "pope", "pope"), ["random"])["random"]
    result = score_pope(items, RANDOM_ANSWERS)
    assert (result.tp, result.tn, result.fp, result.fn) == (2, 2, 1, 1)
    assert result.accuracy == pytest.approx(4 / 6)  # (TP + TN) / 6
    assert result.precision == pytest.approx(2 / 3)  # TP / (TP + FP)
    assert result.recall == pytest.approx(2 / 3)  # TP / (TP + FN)
    assert result.f1 == pytest.approx(2 / 3)  # 2PR / (P + R) with P = R = 2/3
    assert result.yes_ratio == pytest.approx(3 / 6)  # answers 1, 4, 5 read as yes
    assert result.n_unparsed == 1
    with pytest.raises(ValueError, match="6 POPE questions but 1 answers"):
        score_pope(items, ["Yes"])


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            '{"question_id": 2, "image": "b.jpg", "text": "Q?", "label": "maybe"}',
            r"line 2 \(question_id 2\): field 'label' must be one of \['yes', 'no'\], got 'maybe'",
        ),
        (
            '{"question_id": 2, "image": "b.jpg", "label": "no"}',
            r"line 2 \(question_id 2\): missing field 'text'",
        ),
        (
            '{"question_id": 1, "image": "b.jpg", "text": "Q?", "label": "no"}',
            r"line 2 \(question_id 1\): duplicate question_id 1",
        ),
        (
            '{"question_id": [2], "image": "b.jpg", "text": "Q?", "label": "no"}',
            r"line 2 \(question_id \[2\]\): field 'question_id' must be an integer or string",
        ),
        (
            '{"question_id": 2, "image": "b.jpg", "text": "Q?", "label": "no"',
            r"line 2: not valid JSON",
        ),
        ('["not", "an", "object"]', r"line 2: expected a JSON object, got list"),
    ],
)
def test_malformed_lines_name_file_and_record(tmp_path: Path, line: str, problem: str) -> None:
    good = '{"question_id": 1, "image": "a.jpg", "text": "Is there a cat?", "label": "yes"}'
    (tmp_path / "coco_pope_random.json").write_text(f"{good}\n{line}\n")
    with pytest.raises(BenchmarkFormatError, match=r"coco_pope_random\.json: " + problem):
        load_pope(DataRoot(tmp_path, "pope"), ["random"])


def test_array_file_empty_file_and_missing_split(tmp_path: Path, fixtures_dir: Path) -> None:
    items = [{"question_id": "q1", "image": "a.jpg", "text": "Is there a cat?", "label": "no"}]
    (tmp_path / "array.json").write_text(json.dumps(items))
    (item,) = load_pope_split(DataRoot(tmp_path, "pope"), "array.json")
    assert (item.question_id, item.label) == ("q1", False)
    (tmp_path / "empty.json").write_text("")
    with pytest.raises(BenchmarkFormatError, match=r"empty\.json: no questions"):
        load_pope_split(DataRoot(tmp_path, "pope"), "empty.json")
    shutil.copytree(fixtures_dir / "pope", tmp_path / "pope")
    (tmp_path / "pope" / "coco_pope_popular.json").unlink()
    with pytest.raises(
        BenchmarkDataError, match=r"benchmark 'pope': file not found: .*coco_pope_popular\.json"
    ):
        load_pope(DataRoot(tmp_path / "pope", "pope"))


@pytest.mark.parametrize(
    ("answer", "is_yes"),
    [
        ("No", False),
        ("no", False),
        ("No, there is no dog.", False),  # the comma goes, "No" is a word
        ("There is not a dog.", False),
        ("Yes. There is no dog.", True),  # only the first sentence counts
        ("NO", True),  # case-sensitive: not "No"
        ("No!", True),  # "No!" is not the word "No"
        ("(No)", True),
        ("Not sure.", True),  # "Not" is not "not"
        ("No-", True),
        ("isn't", True),
        ("No\nthere is none", True),  # split on spaces only: "No\nthere" is one word
        ("", True),
    ],
)
def test_reference_reading_of_an_answer_keeps_popes_quirks(answer, is_yes):
    assert pope_reference_answer(answer) is is_yes


def test_reference_and_lenient_figures_by_hand():
    items = [
        PopeItem(i, "x.jpg", "Is there a dog in the image?", label)
        for i, label in enumerate([True, True, False, False])
    ]
    answers = ["Yes", "No!", "NO.", "No, there is not."]
    # reference: yes, yes, yes, no -> TP 2, FP 1, TN 1, FN 0
    ref = score_pope(items, answers)
    assert (ref.tp, ref.fp, ref.tn, ref.fn) == (2, 1, 1, 0)
    assert ref.accuracy == 0.75 and ref.precision == 2 / 3 and ref.recall == 1.0
    assert ref.yes_ratio == 0.75
    # lenient: yes, no, no, no -> TP 1, FP 0, TN 2, FN 1
    lenient = score_pope(items, answers, "lenient")
    assert (lenient.tp, lenient.fp, lenient.tn, lenient.fn) == (1, 0, 2, 1)
    with pytest.raises(ValueError, match="unknown POPE answer rule 'loose'"):
        score_pope(items, answers, "loose")
