"""CHAIR as Rohrbach's ``utils/chair.py`` and RLAIF-V's ``eval_gpt_obj_halbench.py`` compute it.

The synonym files are fixtures in the references' format (``fixtures/chair/synonyms.txt``,
``fixtures/object_halbench/synonyms_refine.txt``); every expected value is worked out by hand
from the scripts' rules.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mmrlaif.evaluation.hallucination.chair import (
    ChairVocabulary,
    chair_counts,
    chair_metrics,
)
from mmrlaif.evaluation.hallucination.coco import load_coco_ground_truth
from mmrlaif.evaluation.hallucination.common import (
    BenchmarkDataError,
    BenchmarkFormatError,
    DataRoot,
)
from mmrlaif.evaluation.hallucination.nlp import ReferenceNlp


@pytest.fixture(scope="module")
def nlp() -> ReferenceNlp:
    return ReferenceNlp(spacy_model=None)


@pytest.fixture(scope="module")
def rohrbach() -> ChairVocabulary:
    text = (Path(__file__).parent / "fixtures" / "chair" / "synonyms.txt").read_text()
    return ChairVocabulary.parse(text, "rohrbach")


@pytest.fixture(scope="module")
def rlaifv() -> ChairVocabulary:
    text = Path(__file__).parent / "fixtures" / "object_halbench" / "synonyms_refine.txt"
    return ChairVocabulary.parse(text.read_text(), "rlaifv")


def test_entries_stripped_only_by_rlaifv(rohrbach, rlaifv) -> None:
    # Rohrbach: "...,  skier" keeps its leading space, so "skier" is no COCO word
    assert " skier" in rohrbach.inverse and "skier" not in rohrbach.inverse
    # RLAIF-V strips: "car, sedan,  taxi" makes "taxi" a car
    assert rlaifv.inverse["taxi"] == "car" and rlaifv.inverse["skier"] == "person"
    # RLAIF-V's two-word names are its file's; Rohrbach's a fixed list without "coffee cup"
    assert rlaifv.double_words["coffee cup"] == "coffee cup"
    assert "coffee cup" not in rohrbach.double_words
    assert rlaifv.double_words["train track"] == "train track"
    assert "train track" not in rohrbach.double_words
    # the shared special cases
    for vocabulary in (rohrbach, rlaifv):
        assert vocabulary.double_words["baby bird"] == "bird"
        assert vocabulary.double_words["passenger jet"] == "jet"
        assert vocabulary.double_words["bow tie"] == "tie"
        assert vocabulary.double_words["toilet seat"] == "toilet"
        assert vocabulary.double_words["wine glas"] == "wine glass"


@pytest.mark.parametrize(
    ("text", "rohrbach_words", "rlaifv_words"),
    [
        # Pattern's singularize: men -> man, buses -> bus but bus -> "bu" (no match);
        # WordNet keeps "men" (not in the file: no match); " skier" never matches (Rohrbach)
        (
            "Two men, three women and a skier ride a bus and buses.",
            ["person", "person", "bus"],
            ["person", "person", "bus", "bus"],
        ),
        # every occurrence counts; synonyms and plurals
        ("A dog, another dog and two puppies.", ["dog"] * 3, ["dog"] * 3),
        # two-word names are one word; the hyphenated token is neither
        (
            "Two hot dogs and a teddy bear; a teddy-bear.",
            ["hot dog", "teddy bear"],
            ["hot dog", "teddy bear"],
        ),
        # baby/adult + animal is the animal; a baby alone is a person
        (
            "A baby bird, adult giraffes and a baby.",
            ["bird", "giraffe", "person"],
            ["bird", "giraffe", "person"],
        ),
        # passenger jet / train are vehicles; passengers are people
        (
            "Passengers board a passenger jet next to a passenger train.",
            ["person", "airplane", "train"],
            ["person", "airplane", "train"],
        ),
        # bow tie is a tie; "ties" singularizes to "ty" (Rohrbach) but lemmatizes to "tie";
        # "train tracks" is nothing for RLAIF-V and a train for Rohrbach
        (
            "A man in a bow tie near train tracks and home plate; ties.",
            ["person", "tie", "train"],
            ["person", "tie", "tie"],
        ),
        # toilet seat is a toilet; with "toilet" in the caption a bare seat is no chair
        (
            "The toilet seat is up. A seat next to the toilet.",
            ["toilet", "toilet"],
            ["toilet", "toilet"],
        ),
        ("A seat and a table.", ["chair", "dining table"], ["chair", "dining table"]),
        # case is folded; "coffee cup" is one RLAIF-V word, "dining table" too
        (
            "Wine Glasses and a coffee cup on the dining table.",
            ["wine glass", "cup", "dining table"],
            ["wine glass", "cup", "dining table"],
        ),
        ("Nothing here but sky.", [], []),
    ],
)
def test_caption_words(rohrbach, rlaifv, nlp, text, rohrbach_words, rlaifv_words) -> None:
    assert [node for _, node in rohrbach.caption_words(text, nlp)] == rohrbach_words
    assert [node for _, node in rlaifv.caption_words(text, nlp)] == rlaifv_words
    assert nlp.approximations() == []


def test_counts_by_hand() -> None:
    found = [
        [("man", "person"), ("cat", "cat"), ("cat", "cat")],  # 2 hallucinated cat mentions
        [("dog", "dog")],  # correct
        [],  # no COCO word
    ]
    truth = [{"person", "dog"}, {"dog", "car"}, {"bed"}]
    captions = ["A man and a cat, cat.", "A dog.", "Sky "]
    result = chair_counts(found, truth, captions)
    assert result.chair_s == pytest.approx(1 / 3)  # over all captions
    assert result.chair_s_refine == pytest.approx(1 / 2)  # over captions with a COCO word
    assert result.chair_i == pytest.approx(2 / 4)  # every occurrence
    # distinct correct node words {person} + {dog} over ground truth 2 + 2 + 1
    assert result.object_recall == pytest.approx(2 / 5)
    # "A man and a cat, cat." 6 + "A dog." 2 + "Sky" 1
    assert result.avg_word_len == pytest.approx(9 / 3)
    assert result.hallucinated_by_object == {"cat": 2}
    empty = chair_counts([], [], [])
    assert (empty.chair_s, empty.chair_i, empty.object_recall) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="2 captions, 1 word lists, 1 ground truths"):
        chair_counts([[]], [set()], ["a", "b"])


def test_rohrbach_metrics(rohrbach, nlp) -> None:
    captions = ["A boy rides a bus.", "A man, a man and a dog."]
    # "boy" is a person (hallucinated on image 1); "bus" -> "bu" is no word at all
    result = chair_metrics(captions, [{"bus"}, {"person"}], rohrbach, nlp)
    assert (result.n_words, result.n_hallucinated_words) == (1 + 3, 1 + 1)
    assert result.chair_s == pytest.approx(2 / 2)
    assert result.chair_i == pytest.approx(2 / 4)


def test_ground_truth_from_instances_and_captions(fixtures_dir: Path, rlaifv, nlp) -> None:
    root = DataRoot(fixtures_dir / "object_halbench", "object_halbench")
    truth = load_coco_ground_truth(root, [101, 102, 103, 104], rlaifv, nlp)
    assert truth == {
        # instances: dog, person x2; caption "A man walks his puppy past a parked car." adds car
        101: {"dog", "person", "car"},
        # instances: toilet; "...toilet with the seat up next to a sink.": the seat is no chair
        102: {"toilet", "sink"},
        # instances: dining table, cup; "A mug of coffee on a wooden table." adds nothing new
        103: {"dining table", "cup"},
        # from the train2014 files: cat, bed; caption "A kitten sleeping on a bed."
        104: {"cat", "bed"},
    }


def test_missing_synonym_file_names_it_and_its_source(tmp_path: Path) -> None:
    root = DataRoot(tmp_path, "object_halbench")
    with pytest.raises(
        BenchmarkDataError,
        match=r"'object_halbench': synonym file not found \(download it from RLAIF-V.*"
        r"synonyms_refine\.txt\): .*synonyms_refine\.txt",
    ):
        ChairVocabulary.load(root, "rlaifv")
    with pytest.raises(BenchmarkDataError, match=r"LisaAnne/Hallucination, data/synonyms\.txt"):
        ChairVocabulary.load(DataRoot(tmp_path, "chair"), "rohrbach")
    (tmp_path / "synonyms.txt").write_text("\n")
    with pytest.raises(BenchmarkFormatError, match=r"synonyms\.txt: no synonyms"):
        ChairVocabulary.load(DataRoot(tmp_path, "chair"), "rohrbach")


def _copy(fixtures_dir: Path, tmp_path: Path) -> Path:
    shutil.copytree(fixtures_dir / "object_halbench", tmp_path / "oh")
    return tmp_path / "oh"


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_bad_annotations_name_file_and_record(fixtures_dir: Path, tmp_path: Path, rlaifv) -> None:
    root = _copy(fixtures_dir, tmp_path)
    data = DataRoot(root, "object_halbench")
    file = root / "annotations" / "instances_val2014.json"
    _edit(file, lambda d: d["annotations"][1].update(category_id=5))
    with pytest.raises(
        BenchmarkFormatError,
        match=r"instances_val2014\.json: annotations\[1\] \(id 2\): unknown category_id 5",
    ):
        load_coco_ground_truth(data, [101], rlaifv)
    _edit(file, lambda d: d["annotations"][1].update(category_id=1))
    instances = root / "annotations" / "instances_train2014.json"
    _edit(instances, lambda d: d["categories"][0].update(name="unicorn"))
    with pytest.raises(
        BenchmarkFormatError, match=r"categories\[0\] \(id 17\): category 'unicorn' is not in"
    ):
        load_coco_ground_truth(data, [101], rlaifv)
    _edit(instances, lambda d: d["categories"][0].update(name="cat"))
    with pytest.raises(BenchmarkDataError, match=r"COCO image id 555 .* is in no instances file"):
        load_coco_ground_truth(data, [101, 555], rlaifv)
    for captions in (root / "annotations").glob("captions_*.json"):
        captions.unlink()
    with pytest.raises(
        BenchmarkDataError,
        match=r"'object_halbench': no COCO annotation file: .*annotations/captions_\*\.json",
    ):
        load_coco_ground_truth(data, [101], rlaifv)
