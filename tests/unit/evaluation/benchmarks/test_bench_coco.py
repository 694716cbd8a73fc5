"""The COCO lexicon with CHAIR's rules, and COCO ground truth from instances + captions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mmrlaif.evaluation.benchmarks.coco import (
    COCO_CATEGORIES,
    COCO_SYNONYMS,
    CocoObjectExtractor,
    coco_lexicon,
    load_coco_ground_truth,
)
from mmrlaif.evaluation.benchmarks.common import (
    BenchmarkDataError,
    BenchmarkFormatError,
    DataRoot,
)
from mmrlaif.evaluation.lexicon import UnknownObjectError


@pytest.fixture(scope="module")
def extractor() -> CocoObjectExtractor:
    return CocoObjectExtractor()


def test_the_80_categories(extractor: CocoObjectExtractor) -> None:
    assert len(COCO_CATEGORIES) == len(set(COCO_CATEGORIES)) == 80
    assert set(COCO_SYNONYMS) == set(COCO_CATEGORIES)
    lexicon = coco_lexicon()
    assert lexicon.objects == tuple(sorted(COCO_CATEGORIES))
    for name in COCO_CATEGORIES:  # every category names itself, and so does its plural
        assert extractor.canonical(name) == name
        assert extractor.objects(f"I see {name}.") == [name]
    with pytest.raises(UnknownObjectError):
        extractor.canonical("unicorn")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # two-word names are one mention; "hot dog" is not a dog, "teddy bear" not a bear
        ("Two hot dogs and a teddy bear.", ["hot dog", "teddy bear"]),
        (
            "A cell phone, fire hydrants and traffic lights.",
            ["cell phone", "fire hydrant", "traffic light"],
        ),
        ("Stop signs by a parking meter.", ["stop sign", "parking meter"]),
        ("Wine glasses on the dining table.", ["wine glass", "dining table"]),
        # "baby"/"adult" + animal is the animal, not a person; "baby" alone is a person
        ("A baby bird, adult giraffes and a baby.", ["bird", "giraffe", "person"]),
        # "passenger jet"/"passenger train" are vehicles, "passengers" alone are people
        (
            "Passengers board a passenger jet next to a passenger train.",
            ["person", "airplane", "train"],
        ),
        # "bow tie" is a tie; "train tracks" and "home plate" name nothing
        ("A man in a bow tie near train tracks and home plate.", ["person", "tie"]),
        # case, hyphens, possessives and irregular plurals
        (
            "The Teddy-Bear's owner: men, women, children; mice and knives.",
            ["teddy bear", "person", "person", "person", "mouse", "knife"],
        ),
        # synonyms
        (
            "A puppy, a kitten, a sofa, a fridge and a TV.",
            ["dog", "cat", "couch", "refrigerator", "tv"],
        ),
        # longer names keep their parts quiet
        ("A microwave oven above the oven, a toaster oven.", ["microwave", "oven", "toaster"]),
        ("Nothing here but sky.", []),
    ],
)
def test_chair_phrases(extractor: CocoObjectExtractor, text: str, expected: list[str]) -> None:
    assert extractor.objects(text) == expected


def test_toilet_seat_rule(extractor: CocoObjectExtractor) -> None:
    # "toilet seat" is a toilet; with "toilet" in the text, a bare "seat" is not a chair
    assert extractor.objects("The toilet seat is up.") == ["toilet"]
    assert extractor.objects("A seat next to the toilet.") == ["toilet"]
    assert extractor.objects("Toilets and two seats.") == ["toilet"]
    # without a toilet, a seat is a chair
    assert extractor.objects("A seat and a stool.") == ["chair", "chair"]


def test_every_occurrence_is_a_mention(extractor: CocoObjectExtractor) -> None:
    assert extractor.objects("A dog, another dog and a puppy.") == ["dog", "dog", "dog"]


def test_ground_truth_from_instances_and_captions(
    fixtures_dir: Path, extractor: CocoObjectExtractor
) -> None:
    root = DataRoot(fixtures_dir / "object_halbench", "object_halbench")
    truth = load_coco_ground_truth(root, [101, 102, 103, 104], extractor)
    assert truth == {
        # instances: dog, person x2; caption "A man walks his puppy past a parked car." adds car
        101: {"dog", "person", "car"},
        # instances: toilet; caption "...toilet with the seat up next to a sink.": the seat is
        # not a chair (toilet rule), the sink is added
        102: {"toilet", "sink"},
        # instances: dining table, cup; caption "A mug of coffee on a wooden table." adds nothing
        103: {"dining table", "cup"},
        # from the train2014 files: cat, bed; caption "A kitten sleeping on a bed."
        104: {"cat", "bed"},
    }


def _copy(fixtures_dir: Path, tmp_path: Path) -> Path:
    shutil.copytree(fixtures_dir / "object_halbench", tmp_path / "oh")
    return tmp_path / "oh"


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_unknown_category_id_names_file_and_record(fixtures_dir: Path, tmp_path: Path) -> None:
    root = _copy(fixtures_dir, tmp_path)
    file = root / "annotations" / "instances_val2014.json"
    _edit(file, lambda d: d["annotations"][1].update(category_id=5))
    with pytest.raises(
        BenchmarkFormatError,
        match=r"instances_val2014\.json: annotations\[1\] \(id 2\): unknown category_id 5",
    ):
        load_coco_ground_truth(DataRoot(root, "object_halbench"), [101])


def test_non_coco_category_and_bad_caption(fixtures_dir: Path, tmp_path: Path) -> None:
    root = _copy(fixtures_dir, tmp_path)
    instances = root / "annotations" / "instances_train2014.json"
    _edit(instances, lambda d: d["categories"][0].update(name="unicorn"))
    with pytest.raises(BenchmarkFormatError, match=r"categories\[0\] \(id 17\): .*'unicorn'"):
        load_coco_ground_truth(DataRoot(root, "object_halbench"), [101])
    _edit(instances, lambda d: d["categories"][0].update(name="cat"))
    captions = root / "annotations" / "captions_val2014.json"
    _edit(captions, lambda d: d["annotations"][2].pop("caption"))
    with pytest.raises(
        BenchmarkFormatError,
        match=r"captions_val2014\.json: annotations\[2\] \(id 13\): missing field 'caption'",
    ):
        load_coco_ground_truth(DataRoot(root, "object_halbench"), [101])


def test_missing_image_and_missing_files(fixtures_dir: Path, tmp_path: Path) -> None:
    root = _copy(fixtures_dir, tmp_path)
    data = DataRoot(root, "object_halbench")
    with pytest.raises(BenchmarkDataError, match=r"COCO image id 555 .* is in no instances file"):
        load_coco_ground_truth(data, [101, 555])
    for file in (root / "annotations").glob("captions_*.json"):
        file.unlink()
    with pytest.raises(
        BenchmarkDataError,
        match=r"'object_halbench': no COCO annotation file: .*annotations/captions_\*\.json",
    ):
        load_coco_ground_truth(data, [101])
