"""AMBER: data files and metrics, with expected values worked out by hand.

The fixture vocabulary (``fixtures/amber/data/relation.json``) is: sky; person -> people, man,
woman; man -> person, people; dog; grass -> ground; tree -> forest; forest -> tree; car ->
vehicle; cloud; bench -> chair; sun; bird; can; ship -> boat. Safe words: cloud, sign.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mmrlaif.evaluation.hallucination.amber import (
    AmberAnnotation,
    AmberVocabulary,
    load_amber,
)
from mmrlaif.evaluation.hallucination.amber_metrics import (
    AmberNounExtractor,
    amber_discriminative,
    amber_generative,
    parse_amber_answer,
    score_amber,
)
from mmrlaif.evaluation.hallucination.common import BenchmarkFormatError, DataRoot

GENERATIVE = [
    # nouns in the vocabulary: men->man, people, dog, ground, cloud, car, man, chairs->chair
    # ("can" after "man" is not a noun): 8 nouns.
    # truth [sky, man, dog, grass]: man (direct), people (of man), dog, ground (of grass)
    #   -> covered man, dog, grass = 3 of 4; cloud is a safe word (counted, not hallucinated);
    # car is a hallu word -> Cog car, hallucinated; chair (of bench) -> Cog bench, hallucinated
    #   -> 2 hallucinated nouns; Cog 2 of 3 (bird not mentioned)
    "The men and people walk a dog on the ground under a cloud near a car. A man can see chairs.",
    # boat (of the first "ship" entry), trees -> tree: 2 nouns, none hallucinated;
    # truth [ship, ship, tree]: the first ship and tree covered, the repeated ship never is
    #   (AMBER marks only the first match) -> 2 of 3; Cog 0 of 2
    "A boat on the water near trees.",
    # "can" after "A" is a noun; not truth, not hallu -> hallucinated: 1 of 1; Cover 0/1, Cog 0/1
    "A can of soda.",
]
DISCRIMINATIVE = [
    "Yes, there is.",  # id 4, existence, truth yes -> correct
    "No.",  # id 5, existence, truth no -> correct "No"
    "Yes.",  # id 6, attribute-state, truth no -> wrong
    "No, there are three.",  # id 7, attribute-number, truth yes -> wrong "No"
    "The man is not running.",  # id 8, attribute-action, truth no -> correct "No"
    "Yes",  # id 9, relation, truth yes -> correct
    "Maybe",  # id 10, relation ("relation" type), truth no -> read as yes: wrong
]


@pytest.fixture()
def amber(fixtures_dir: Path):
    return load_amber(DataRoot(fixtures_dir / "amber", "amber"))


def test_load_amber(amber, fixtures_dir: Path) -> None:
    assert [q.id for q in amber.queries] == list(range(1, 11))
    assert amber.queries[3].query == "Is there a dog in this image?"
    assert amber.queries[3].to_query().image_path == "image/AMBER_1.jpg"
    ann = amber.annotations
    assert ann[1].truth == ("sky", "man", "dog", "grass") and ann[1].hallu == (
        "car",
        "bench",
        "bird",
    )
    assert [ann[i].dimension for i in range(4, 11)] == (
        ["existence"] * 2 + ["attribute"] * 3 + ["relation"] * 2
    )
    assert [ann[i].kind for i in (6, 7, 8)] == ["state", "number", "action"]
    assert [ann[i].answer for i in range(4, 11)] == [True, False, False, True, False, True, False]
    assert amber.vocabulary.safe_words == {"cloud", "sign"}
    assert "vehicle" in amber.vocabulary.words and "sign" not in amber.vocabulary.words
    generative = load_amber(DataRoot(fixtures_dir / "amber", "amber"), "query_generative.json")
    assert [q.id for q in generative.queries] == [1, 2, 3]


def test_noun_extractor(amber) -> None:
    extract = AmberNounExtractor(amber.vocabulary.words)
    assert extract(GENERATIVE[0]) == [
        "man",
        "people",
        "dog",
        "ground",
        "cloud",
        "car",
        "man",
        "chair",
    ]
    assert extract("A can, two cans, we can go.") == ["can", "can"]
    assert extract("Dogs and dogs; boats.") == ["dog", "boat"]  # case kept, as AMBER does


def test_generative_hand_example(amber) -> None:
    annotations = [amber.annotations[i] for i in (1, 2, 3)]
    result = amber_generative(annotations, GENERATIVE, amber.vocabulary)
    # nouns 8 + 2 + 1 = 11, hallucinated 2 + 0 + 1 = 3 -> CHAIR 3/11
    assert (result.n_nouns, result.n_hallucinated_nouns) == (11, 3)
    assert result.chair == pytest.approx(3 / 11)
    # truth entries 4 + 3 + 1 = 8, covered 3 + 2 + 0 = 5 -> Cover 5/8
    assert (result.n_truth, result.n_truth_covered) == (8, 5)
    assert result.cover == pytest.approx(5 / 8)
    # responses 1 and 3 hallucinate -> Hal 2/3
    assert result.hal == pytest.approx(2 / 3)
    # hallu entries 3 + 2 + 1 = 6, mentioned 2 + 0 + 0 = 2 -> Cog 2/6
    assert (result.n_hallu, result.n_hallu_covered) == (6, 2)
    assert result.cog == pytest.approx(1 / 3)


def test_generative_similarity() -> None:
    vocabulary = AmberVocabulary({"ship": ("boat",), "bench": ("chair",)}, frozenset())
    ann = AmberAnnotation(1, "generative", truth=("ship",), hallu=("bench",))

    def similar(a: str, b: str) -> bool:  # stands in for spaCy: "chair" is like "boat"
        return a == b or (a, b) == ("chair", "boat")

    # without similarity: chair (of bench) -> Cog bench, hallucinated
    plain = amber_generative([ann], ["A chair."], vocabulary)
    assert (plain.chair, plain.cover, plain.cog, plain.hal) == (1.0, 0.0, 1.0, 1.0)
    # with it: chair is similar to boat (of ship) -> covers ship and is not hallucinated
    alike = amber_generative([ann], ["A chair."], vocabulary, similar=similar)
    assert (alike.chair, alike.cover, alike.cog, alike.hal) == (0.0, 1.0, 1.0, 0.0)
    # a custom noun finder replaces the default one; nouns outside the vocabulary are ignored
    custom = amber_generative([ann], ["..."], vocabulary, extract_nouns=lambda t: ["boat", "x"])
    assert (custom.n_nouns, custom.cover) == (1, 1.0)
    with pytest.raises(ValueError, match="annotation 4 is 'relation', not generative"):
        amber_generative([AmberAnnotation(4, "relation", answer=True)], ["Yes"], vocabulary)


def test_discriminative_hand_example(amber) -> None:
    # the lenient reading (POPE's rule), not AMBER's: every answer is read
    result = amber_discriminative(
        [amber.annotations[i] for i in range(4, 11)], DISCRIMINATIVE, strict=False
    )
    overall = result.overall
    # correct: ids 4, 5, 8, 9 -> 4/7
    assert overall.accuracy == pytest.approx(4 / 7)
    # "No" answers: ids 5, 7, 8; correct among them: 5, 8 -> precision 2/3
    assert (overall.n_answer_no, overall.n_correct_no) == (3, 2)
    assert overall.precision == pytest.approx(2 / 3)
    # truth "no": ids 5, 6, 8, 10 -> recall 2/4
    assert overall.recall == pytest.approx(1 / 2)
    # F1 = 2 * (2/3) * (1/2) / (2/3 + 1/2) = 4/7
    assert overall.f1 == pytest.approx(4 / 7)
    groups = result.by_group
    assert list(groups) == ["existence", "attribute", "relation", "state", "number", "action"]
    # existence (4, 5): all right
    assert (groups["existence"].accuracy, groups["existence"].f1) == (1.0, 1.0)
    # attribute (6, 7, 8): correct 8 -> 1/3; "No" answers 7, 8 (8 right) -> P 1/2;
    # truth no 6, 8 -> R 1/2; F1 1/2
    attribute = groups["attribute"]
    assert attribute.accuracy == pytest.approx(1 / 3)
    assert (attribute.precision, attribute.recall, attribute.f1) == (0.5, 0.5, 0.5)
    # state (6): no "No" answer -> P 0; R 0/1; number (7): no truth "no" -> R 0; action (8): 1
    assert (groups["state"].precision, groups["state"].recall, groups["state"].f1) == (0, 0, 0)
    assert (groups["number"].accuracy, groups["number"].recall) == (0.0, 0.0)
    assert groups["action"].f1 == 1.0
    # relation (9, 10): 9 right, 10 ("Maybe" -> yes) wrong -> 1/2; no "No" answers -> P, R 0
    assert (groups["relation"].accuracy, groups["relation"].f1) == (0.5, 0.0)


def test_discriminative_reference_answers_by_default(amber) -> None:
    # AMBER's inference.py: only the exact strings "Yes" and "No"
    assert [parse_amber_answer(r) for r in ("Yes", "No", "No.", "yes", "NO", " No")] == [
        True,
        False,
        None,
        None,
        None,
        None,
    ]
    result = amber_discriminative([amber.annotations[i] for i in range(4, 11)], DISCRIMINATIVE)
    # only "Yes" (id 9) is an exact answer, and right -> 1/7; no "No" answers -> P 0, R 0/4
    overall = result.overall
    assert (overall.n_correct, overall.n_unparsed, overall.n_answer_no) == (1, 6, 0)
    assert (overall.precision, overall.recall, overall.f1) == (0.0, 0.0, 0.0)


def test_score_amber_splits_by_type(amber) -> None:
    result = score_amber(amber, amber.queries, GENERATIVE + DISCRIMINATIVE, strict=False)
    assert result.generative.chair == pytest.approx(3 / 11)
    assert result.discriminative.overall.f1 == pytest.approx(4 / 7)
    # AMBER score = (1 - CHAIR + F1) / 2
    assert result.amber_score == pytest.approx((1 - 3 / 11 + 4 / 7) / 2)
    # the headline is what inference.py prints, / 100: round(score / (num + 0.001) * 100, 1)
    headline = result.headline()
    assert headline["chair"] == pytest.approx(0.273)  # 3 / 11.001 = 27.27%
    assert headline["cover"] == pytest.approx(0.625)  # 5 / 8.001 = 62.49%
    assert headline["hal"] == pytest.approx(0.667)  # 100 - 1 / 3.001 = 66.68%
    assert headline["cog"] == pytest.approx(0.333)  # 2 / 6.001
    assert headline["accuracy"] == pytest.approx(0.571)  # 4 / 7.001
    # P = 2 / 3.001 -> 66.6, R = 2 / 4.001 -> 50.0 (rounded first, as the script does);
    # F1 = 2 * .666 * .5 / (.666 + .5 + 1e-4) = 57.10% -> 57.1
    assert (headline["precision"], headline["recall"]) == (pytest.approx(0.666), 0.5)
    assert headline["f1"] == pytest.approx(0.571)
    # existence: P = R = 1 / 1.001 -> 99.9; F1 with its own 1e-3 -> 99.9
    assert headline["existence_f1"] == pytest.approx(0.999)
    assert headline["amber_score"] == pytest.approx((100 - 27.3 + 57.1) / 200)
    only_generative = score_amber(amber, amber.queries[:3], GENERATIVE)
    assert only_generative.discriminative is None and only_generative.amber_score is None
    assert json.loads(json.dumps(result.to_dict()))["discriminative"]["overall"]["n"] == 7


def _copy(fixtures_dir: Path, tmp_path: Path) -> Path:
    shutil.copytree(fixtures_dir / "amber", tmp_path / "amber")
    return tmp_path / "amber"


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=1))


@pytest.mark.parametrize(
    ("file", "change", "problem"),
    [
        (
            "annotations.json",
            lambda d: d[1].update(id=3),
            r"annotations\.json: record 1 \(id 3\): id 3 at position 1: AMBER reads",
        ),
        (
            "annotations.json",
            lambda d: d[4].update(type="discriminative-colour"),
            r"annotations\.json: record 4 \(id 5\): field 'type' must be one of",
        ),
        (
            "annotations.json",
            lambda d: d[5].update(truth="maybe"),
            r"annotations\.json: record 5 \(id 6\): field 'truth' must be one of \['yes', 'no'\]",
        ),
        (
            "annotations.json",
            lambda d: d[0].pop("hallu"),
            r"annotations\.json: record 0 \(id 1\): missing field 'hallu'",
        ),
        (
            "annotations.json",
            lambda d: d[2].update(truth=["forest", "yeti"]),
            r"annotations\.json: record 2 \(id 3\): object 'yeti' is not a key of data/relation",
        ),
        (
            "query/query_all.json",
            lambda d: d.append({"id": 11, "image": "a.jpg", "query": "Q"}),
            r"query_all\.json: record 10 \(id 11\): no annotation",
        ),
        (
            "query/query_all.json",
            lambda d: d[2].update(id=2),
            r"query_all\.json: record 2 \(id 2\): duplicate id 2",
        ),
        (
            "query/query_all.json",
            lambda d: d[0].pop("image"),
            r"query_all\.json: record 0 \(id 1\): missing field 'image'",
        ),
        (
            "relation.json",
            lambda d: d.update(sky="blue"),
            r"relation\.json: entry 'sky': must map a word to a list",
        ),
    ],
)
def test_malformed_files_name_file_and_record(
    fixtures_dir: Path, tmp_path: Path, file: str, change, problem: str
) -> None:
    root = _copy(fixtures_dir, tmp_path)
    _edit(root / "data" / file, change)
    with pytest.raises(BenchmarkFormatError, match=problem):
        load_amber(DataRoot(root, "amber"))
