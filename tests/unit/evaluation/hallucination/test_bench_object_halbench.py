"""Object HalBench: items loader and CHAIR figures, with expected values worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmrlaif.evaluation.hallucination.chair import ChairVocabulary
from mmrlaif.evaluation.hallucination.common import BenchmarkFormatError, DataRoot
from mmrlaif.evaluation.hallucination.object_halbench import (
    load_object_halbench_items,
    object_halbench_headline,
    object_halbench_metrics,
)

# The fixture images' ground truth (see test_bench_chair.py for how it is derived).
GROUND_TRUTH = [
    {"dog", "person", "car"},
    {"toilet", "sink"},
    {"dining table", "cup"},
    {"cat", "bed"},
]
RESPONSES = [
    # mentions man, woman (person x2), dog, cat, bench: 5 mentions; cat and bench are not in
    # the ground truth -> 2 hallucinated; distinct correct categories {person, dog} -> 2
    "A man and a woman walk a dog. A cat sits on a bench.",
    # toilet, sink, toilet ("toilet seat"): 3 mentions, none hallucinated; {toilet, sink} -> 2
    "A toilet and a sink. The toilet seat is white.",
    # no COCO object at all: left out of the response-level denominator; covers nothing
    "A close-up of coffee.",
    # hot dog, teddy bear, bed: 3 mentions, 2 hallucinated; {bed} -> 1
    "A hot dog and a teddy bear on a bed.",
]


@pytest.fixture(scope="module")
def vocabulary() -> ChairVocabulary:
    root = DataRoot(Path(__file__).parent / "fixtures" / "object_halbench", "object_halbench")
    return ChairVocabulary.load(root, "rlaifv")


def test_metrics_hand_example(vocabulary: ChairVocabulary) -> None:
    # the script reads answers with "Assistant:" removed and stripped
    responses = ["Assistant: " + RESPONSES[0], *RESPONSES[1:]]
    result = object_halbench_metrics(responses, GROUND_TRUTH, vocabulary)
    # responses mentioning an object: 1, 2, 4 = 3; hallucinating: 1 and 4 = 2 -> 2/3
    assert result.n_captions_with_objects == 3
    assert result.n_hallucinated_captions == 2
    assert result.chair_s_refine == pytest.approx(2 / 3)
    # mentions 5 + 3 + 0 + 3 = 11, hallucinated 2 + 0 + 0 + 2 = 4 -> 4/11
    assert (result.n_words, result.n_hallucinated_words) == (11, 4)
    assert result.chair_i == pytest.approx(4 / 11)
    # ground-truth node words 3 + 2 + 2 + 2 = 9, mentioned 2 + 2 + 0 + 1 = 5 -> 5/9
    assert (result.n_gt_objects, result.n_gt_mentioned) == (9, 5)
    assert result.object_recall == pytest.approx(5 / 9)
    # CHAIR_s over all 4 responses -> 2/4
    assert result.chair_s == pytest.approx(0.5)
    # words per response, split on " ": 14 + 10 + 4 + 10 ("Assistant:" gone)
    assert result.avg_word_len == pytest.approx(38 / 4)
    assert result.hallucinated_by_object == {"bench": 1, "cat": 1, "hot dog": 1, "teddy bear": 1}
    assert object_halbench_headline(result) == {
        "response_hallucination_rate": pytest.approx(2 / 3),
        "mention_hallucination_rate": pytest.approx(4 / 11),
        "object_recall": pytest.approx(5 / 9),
    }
    assert json.loads(json.dumps(result.to_dict()))["n_words"] == 11


def test_metrics_edge_cases(vocabulary: ChairVocabulary) -> None:
    empty = object_halbench_metrics([], [], vocabulary)
    assert (empty.chair_s_refine, empty.chair_i) == (0.0, 0.0)
    # no mention at all -> rates 0 (the script would divide by zero), recall 0/1
    quiet = object_halbench_metrics(["Just the sky."], [["dog"]], vocabulary)
    assert (quiet.n_captions_with_objects, quiet.object_recall, quiet.n_gt_objects) == (0, 0, 1)
    with pytest.raises(ValueError, match="1 captions, 1 word lists, 2 ground truths"):
        object_halbench_metrics(["A dog."], [["dog"], ["cat"]], vocabulary)
    with pytest.raises(ValueError, match="item 0 must be a collection"):
        object_halbench_metrics(["A dog."], ["dog"], vocabulary)


def test_load_items(fixtures_dir: Path) -> None:
    items = load_object_halbench_items(DataRoot(fixtures_dir / "object_halbench", "oh"))
    assert [i.image_id for i in items] == [101, 102, 103, 104]
    assert [i.org_idx for i in items] == [0, 1, 2, 3]
    assert items[1].question == "What do you see happening in this image?"
    assert items[0].image_bytes.startswith(b"\x89PNG")
    query = items[0].query()
    assert query.item == "object_halbench/line 1 (image_id 101)"
    assert query.image_bytes == items[0].image_bytes and query.image_path is None


def _write(tmp_path: Path, lines: list[dict]) -> DataRoot:
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return DataRoot(tmp_path, "object_halbench")


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        (
            {"image_id": 7, "question": "Q?", "image": "not base64!"},
            "field 'image' is not valid base64",
        ),
        ({"image_id": 7, "image": "iVBO"}, "missing field 'question'"),
        ({"image_id": 7, "question": "Q?"}, "no image: needs 'image' \\(base64\\) or 'image_path'"),
        (
            {"image_id": "7", "question": "Q?", "image_path": "a.jpg"},
            "field 'image_id' must be an integer",
        ),
    ],
)
def test_malformed_items_name_file_and_record(tmp_path: Path, record: dict, problem: str) -> None:
    good = {"image_id": 1, "question": "Describe.", "image_path": "images/1.jpg"}
    root = _write(tmp_path, [good, record])
    with pytest.raises(
        BenchmarkFormatError, match=r"items\.jsonl: line 2 \(image_id '?7'?\): " + problem
    ):
        load_object_halbench_items(root, "items.jsonl")


def test_image_path_items_and_empty_file(tmp_path: Path) -> None:
    root = _write(tmp_path, [{"image_id": 5, "question": "Q?", "image_path": "img/5.jpg"}])
    (item,) = load_object_halbench_items(root, "items.jsonl")
    assert (item.image_path, item.image_bytes, item.org_idx) == ("img/5.jpg", None, None)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(BenchmarkFormatError, match=r"empty\.jsonl: no items"):
        load_object_halbench_items(root, "empty.jsonl")
