"""``mmrlaif bench score``: answer files in the reference scripts' formats, scored.

The answers are those of ``test_bench_runner.py`` (hand-derived figures in the per-benchmark
tests), written as each reference script's answer file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mmrlaif.cli import main
from mmrlaif.evaluation.hallucination.common import BenchmarkFormatError, DataRoot
from mmrlaif.evaluation.hallucination.nlp import nltk_resource_found
from tests.unit.evaluation.hallucination.conftest import IMAGES
from tests.unit.evaluation.hallucination.test_bench_runner import ANSWERS, EXPECTED


def _k(image: str) -> int:
    return int(re.search(r"(\d+)\.jpg$", image).group(1))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _score(benchmark: str, data: Path | None, answers: Path, *extra: str) -> dict:
    out = answers.with_suffix(".scored.json")
    argv = ["bench", "score", "--benchmark", benchmark, "--answers", str(answers)]
    argv += ["--data", str(data)] if data else []
    assert main([*argv, *extra, "--out", str(out)]) == 0
    return json.loads(out.read_text())


def _check(headline: dict) -> None:
    for key, value in headline.items():
        if key in EXPECTED:
            assert value == pytest.approx(EXPECTED[key]), key
    assert set(headline) & set(EXPECTED), headline


def test_pope_answer_file_scores_as_evaluate_py(bench_data, tmp_path):
    questions = _lines(bench_data["pope"] / "coco_pope_random.json")
    answers = tmp_path / "coco_pope_random_answers.jsonl"
    answers.write_text(
        "\n".join(
            json.dumps(
                {"question_id": q["question_id"], "answer": ANSWERS[(_k(q["image"]), q["text"])]}
            )
            for q in questions
        )
    )
    scored = _score("pope", bench_data["pope"], answers, "--split", "random")
    _check(scored["headline"])
    assert scored["result"]["reference"] is True and scored["n_answers"] == 6
    # an answer file out of step with the questions is named by line
    answers.write_text(answers.read_text().replace('"question_id": 2', '"question_id": 9'))
    with pytest.raises(BenchmarkFormatError, match=r"line 2: question_id 9 where the random"):
        from mmrlaif.evaluation.hallucination.answer_files import score_pope_file

        score_pope_file(DataRoot(bench_data["pope"], "pope"), answers, "random")
    assert main(["bench", "score", "--benchmark", "pope", "--answers", str(answers)]) == 2


def test_amber_inference_file(bench_data, tmp_path):
    queries = json.loads((bench_data["amber"] / "data/query/query_all.json").read_text())
    answers = tmp_path / "amber.json"
    answers.write_text(
        json.dumps(
            [{"id": q["id"], "response": ANSWERS[(_k(q["image"]), q["query"])]} for q in queries]
        )
    )
    scored = _score("amber", bench_data["amber"], answers)
    _check(scored["headline"])
    assert scored["headline"]["amber_chair"] == pytest.approx(0.273)
    assert scored["result"]["answer_rule"] == "reference"
    # this machine has neither NLTK's tagger nor spaCy's model: said, never silently
    if not nltk_resource_found("averaged_perceptron_tagger_eng"):
        assert scored["result"]["reference"] is False
        assert any("averaged_perceptron_tagger_eng" in a for a in scored["result"]["approximate"])


def test_object_halbench_answer_file(bench_data, tmp_path):
    items = _lines(bench_data["object_halbench"] / "obj_halbench_300_with_image.jsonl")
    answers = tmp_path / "objhal_answer.jsonl"
    answers.write_text(
        "\n".join(
            json.dumps(
                {
                    "image_id": item["image_id"],
                    "question": item["question"],
                    "text": "Assistant: " + ANSWERS[(i + 1, item["question"])],
                }
            )
            for i, item in enumerate(items)
        )
    )
    scored = _score("objhal", bench_data["object_halbench"], answers)
    _check(scored["headline"])
    assert scored["headline"]["object_halbench_mention_hallucination_rate"] == pytest.approx(4 / 11)


def test_mmhal_filled_template_rated_by_the_judge(bench_data, judge_server, tmp_path):
    records = json.loads((bench_data["mmhal"] / "response_template.json").read_text())
    k_of = {Path(rel).name: k for rel, k in IMAGES["mmhal"].items()}
    for record in records:
        k = k_of[record["image_src"].rsplit("/", 1)[-1]]
        record["model_answer"] = ANSWERS[(k, record["question"])]
    answers = tmp_path / "response_template.json"
    answers.write_text(json.dumps(records))
    endpoint = f"eval.benchmarks.judge_endpoint={judge_server.base_url}"
    scored = _score("mmhal", None, answers, "--set", endpoint)
    assert scored["headline"]["mmhal_score"] == pytest.approx(2.75)
    assert scored["headline"]["mmhal_hallucination_rate"] == pytest.approx(0.5)


def test_chair_caption_file_as_rohrbach(fixtures_dir, tmp_path):
    # a CHAIR data root: Rohrbach's synonyms.txt and the COCO annotations
    root = tmp_path / "chair"
    (root / "annotations").mkdir(parents=True)
    (root / "synonyms.txt").write_text((fixtures_dir / "chair" / "synonyms.txt").read_text())
    for file in (fixtures_dir / "object_halbench" / "annotations").iterdir():
        (root / "annotations" / file.name).write_text(file.read_text())
    captions = {
        # truth {dog, person, car}: boy, dog (x2) correct; "bus" singularizes to "bu": no word
        "101": "A boy and his dog, dog near a bus.",
        # truth {toilet, sink}: toilet; "seats" is no chair beside a toilet; a cat is hallucinated
        "102": "A toilet with two seats and a cat.",
        # truth {dining table, cup}: " skier" (leading space in the file) never matches
        "103": "A skier at a table.",
    }
    answers = tmp_path / "captions.json"
    answers.write_text(
        json.dumps(
            {
                "overall": {},
                "imgToEval": {k: {"image_id": int(k), "caption": c} for k, c in captions.items()},
            }
        )
    )
    scored = _score("chair", root, answers)
    # COCO words: person, dog, dog | toilet, cat | dining table -> 6, hallucinated: cat -> 1/6
    assert scored["headline"]["chair_i"] == pytest.approx(1 / 6)
    # hallucinating captions: 102 -> CHAIR_s over all 3 captions: 1/3
    assert scored["headline"]["chair_s"] == pytest.approx(1 / 3)
    assert scored["result"]["reference"] is True and scored["result"]["approximate"] == []
    # JSON lines of {"image_id", "caption"} read the same
    lines = tmp_path / "captions.jsonl"
    lines.write_text(
        "\n".join(json.dumps({"image_id": int(k), "caption": c}) for k, c in captions.items())
    )
    assert _score("chair", root, lines)["headline"] == scored["headline"]
    (root / "synonyms.txt").unlink()
    with pytest.raises(Exception, match=r"synonym file not found.*LisaAnne/Hallucination"):
        from mmrlaif.evaluation.hallucination.answer_files import score_chair_file

        score_chair_file(DataRoot(root, "chair"), answers)


def test_fallbacks_are_marked_approximate(bench_data):
    from mmrlaif.evaluation.hallucination.chair import ChairVocabulary, chair_metrics
    from mmrlaif.evaluation.hallucination.nlp import ReferenceNlp, reference_marks

    root = DataRoot(bench_data["object_halbench"], "object_halbench")
    vocabulary = ChairVocabulary.load(root, "rlaifv")
    nlp = ReferenceNlp(spacy_model=None, missing=("punkt_tab", "wordnet"))
    # without WordNet "dogs" stays "dogs" (no match); without punkt_tab "dog." after a
    # sentence break is still split by the untrained Punkt tokenizer
    result = chair_metrics(["Two dogs. A dog. Dogs sleep."], [{"dog"}], vocabulary, nlp)
    assert result.n_words == 1
    marks = reference_marks(nlp)
    assert marks["reference"] is False
    assert [m.split(":")[0] for m in marks["approximate"]] == [
        "NLTK resource 'punkt_tab' not found",
        "NLTK resource 'wordnet' not found",
    ]
    exact = ReferenceNlp(spacy_model=None)
    assert (
        chair_metrics(["Two dogs. A dog. Dogs sleep."], [{"dog"}], vocabulary, exact).n_words == 3
    )
    assert reference_marks(exact) == {"reference": True, "approximate": []}
    with pytest.raises(ValueError, match="unknown NLTK resource"):
        ReferenceNlp(missing=("punkt",))
