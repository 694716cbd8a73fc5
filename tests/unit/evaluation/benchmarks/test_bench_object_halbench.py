"""Object HalBench: items loader and CHAIR figures, with expected values worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmrlaif.evaluation.benchmarks.common import BenchmarkFormatError, DataRoot
from mmrlaif.evaluation.benchmarks.object_halbench import (
    load_object_halbench_items,
    object_halbench_metrics,
)
from mmrlaif.evaluation.lexicon import UnknownObjectError

# The fixture images' ground truth (see test_bench_coco.py for how it is derived).
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


def test_metrics_hand_example() -> None:
    result = object_halbench_metrics(RESPONSES, GROUND_TRUTH)
    # responses mentioning an object: 1, 2, 4 = 3; hallucinating: 1 and 4 = 2 -> 2/3
    assert result.n_responses_with_mentions == 3
    assert result.n_hallucinated_responses == 2
    assert result.response_hallucination_rate == pytest.approx(2 / 3)
    # mentions 5 + 3 + 0 + 3 = 11, hallucinated 2 + 0 + 0 + 2 = 4 -> 4/11
    assert (result.n_mentions, result.n_hallucinated_mentions) == (11, 4)
    assert result.mention_hallucination_rate == pytest.approx(4 / 11)
    # ground-truth categories 3 + 2 + 2 + 2 = 9, mentioned 2 + 2 + 0 + 1 = 5 -> 5/9
    assert (result.n_gt_objects, result.n_gt_mentioned) == (9, 5)
    assert result.object_recall == pytest.approx(5 / 9)
    # CHAIR_s over all 4 responses -> 2/4
    assert result.chair_s_all == pytest.approx(0.5)
    assert result.hallucinated_by_object == {"bench": 1, "cat": 1, "hot dog": 1, "teddy bear": 1}
    assert result.headline() == {
        "response_hallucination_rate": pytest.approx(2 / 3),
        "mention_hallucination_rate": pytest.approx(4 / 11),
        "object_recall": pytest.approx(5 / 9),
    }
    assert json.loads(json.dumps(result.to_dict()))["n_mentions"] == 11


def test_metrics_edge_cases() -> None:
    empty = object_halbench_metrics([], [])
    assert (empty.response_hallucination_rate, empty.mention_hallucination_rate) == (0.0, 0.0)
    # ground truth may use synonyms and plurals; no mention at all -> rates 0, recall 0/1
    quiet = object_halbench_metrics(["Just the sky."], [["puppies"]])
    assert (quiet.n_responses_with_mentions, quiet.object_recall, quiet.n_gt_objects) == (0, 0, 1)
    with pytest.raises(UnknownObjectError, match="ground truth of item 0: unknown object 'yeti'"):
        object_halbench_metrics(["A dog."], [["yeti"]])
    with pytest.raises(ValueError, match="1 responses but 2 ground truths"):
        object_halbench_metrics(["A dog."], [["dog"], ["cat"]])
    with pytest.raises(ValueError, match="item 0 must be a collection"):
        object_halbench_metrics(["A dog."], ["dog"])


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
