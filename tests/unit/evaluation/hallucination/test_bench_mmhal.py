"""MMHal-Bench: template loader, rating rule, figures, and the judge over real loopback HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmrlaif.evaluation.hallucination.common import BenchmarkFormatError, DataRoot
from mmrlaif.evaluation.hallucination.mmhal import (
    MMHAL_JUDGE_TEMPLATE,
    MMHalJudge,
    load_mmhal,
    mmhal_metrics,
    parse_mmhal_rating,
    score_mmhal,
)
from mmrlaif.models.openai_client import EndpointError, OpenAIClient


@pytest.fixture()
def items(fixtures_dir: Path):
    return load_mmhal(DataRoot(fixtures_dir / "mmhal", "mmhal"))


def test_load_template(items) -> None:
    assert [i.question_type for i in items] == ["attribute", "adversarial", "counting", "attribute"]
    first = items[0]
    assert first.image_content == ("Tree", "Plant", "Panda", "Animal")
    assert first.image_file == "10172500456_1f40b6bd8b_o.jpg"
    assert first.query().image_path == "images/10172500456_1f40b6bd8b_o.jpg"
    assert first.query().item == "mmhal/0 (10172500456_1f40b6bd8b_o)"
    assert first.gt_answer == "The panda is black and white."


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"image_content": "Cat, Sofa"}, "field 'image_content' must be a list of non-empty"),
        ({"gt_answer": None}, "field 'gt_answer' must be a string"),
        ({"image_src": "https://example.org/"}, "field 'image_src' has no file name"),
    ],
)
def test_malformed_template_names_file_and_record(
    fixtures_dir: Path, tmp_path: Path, change: dict, problem: str
) -> None:
    records = json.loads((fixtures_dir / "mmhal" / "response_template.json").read_text())
    records[1].update(change)
    (tmp_path / "response_template.json").write_text(json.dumps(records))
    with pytest.raises(
        BenchmarkFormatError,
        match=r"response_template\.json: record 1 \(image_id '20000000001_aaaaaaaaaa_o'\): "
        + problem,
    ):
        load_mmhal(DataRoot(tmp_path, "mmhal"))


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("The answer is right.\nRating: 4, somewhat informative, no hallucination", 4),
        ("RATING: 5", 5),  # the reply is lower-cased first
        ("Rating: 6 ... as I said, Rating: 6.", 6),  # the same rating twice is still one rating
        ("Rating: 2 or maybe Rating: 5", None),  # two different ratings
        ("rating:5", None),  # MMHal looks for "rating: N" with the space
        ("I would not rate this.", None),
    ],
)
def test_rating_rule(reply: str, rating: int | None) -> None:
    assert parse_mmhal_rating(reply) == rating


def test_metrics_hand_example() -> None:
    result = mmhal_metrics([6, None, 2, 3], ["attribute", "adversarial", "counting", "attribute"])
    # an unparsed reply scores 0: ratings 6, 0, 2, 3 -> mean 11/4
    assert result.score == pytest.approx(2.75)
    # ratings below 3: 0 and 2 -> 2/4
    assert result.hallucination_rate == pytest.approx(0.5)
    # adversarial: 0; attribute: (6 + 3) / 2; counting: 2
    assert result.score_by_type == {"adversarial": 0.0, "attribute": 4.5, "counting": 2.0}
    assert (result.n, result.n_unparsed, result.ratings) == (4, 1, (6, 0, 2, 3))
    assert result.headline() == {"score": 2.75, "hallucination_rate": 0.5}
    with pytest.raises(ValueError, match="rating 7 of item 0 is outside 0-6"):
        mmhal_metrics([7], ["attribute"])


def test_judge_over_loopback_http(items, judge_server) -> None:
    judge = MMHalJudge(OpenAIClient(judge_server.base_url, retries=0), "judge-model")
    answers = ["Black and white. [[6]]", "It sleeps. [[both]]", "Two cars. [[2]]", "Round. [[3]]"]
    result, replies = score_mmhal(items, answers, judge)
    # the server rates [[n]] as n and [[both]] with two ratings (unparsed -> 0): 6, 0, 2, 3
    assert result.ratings == (6, 0, 2, 3)
    assert result.score == pytest.approx(2.75)
    assert result.hallucination_rate == pytest.approx(0.5)
    assert result.score_by_type == {"adversarial": 0.0, "attribute": 4.5, "counting": 2.0}
    assert replies[1] == "It could be Rating: 1 or Rating: 5."
    first = judge_server.requests[0]
    assert first["path"] == "/v1/chat/completions"
    body = first["body"]
    assert (body["model"], body["temperature"], "max_tokens" in body) == ("judge-model", 0.0, False)
    (message,) = body["messages"]
    assert message["role"] == "user"
    assert message["content"] == judge.prompt(items[0], answers[0])
    assert "### Image Contents\nTree, Plant, Panda, Animal\n" in message["content"]
    assert "### Question\nWhat colour is the animal on the branch?\n" in message["content"]
    assert (
        "### Standard Human-Generated Answer\nThe panda is black and white.\n"
        in (message["content"])
    )
    assert message["content"].endswith("### LMM Response to Evaluate\nBlack and white. [[6]]\n")
    assert "- Rating: 0, not informative, with hallucination" in MMHAL_JUDGE_TEMPLATE


def test_custom_template_and_errors(items, judge_server) -> None:
    client = OpenAIClient(judge_server.base_url, retries=0)
    official_style = "Contents: {}\nQ: {}\nReference: {}\nAnswer: {}\n"
    judge = MMHalJudge(client, "judge-model", template=official_style, max_tokens=64)
    assert judge.prompt(items[1], "A") == (
        "Contents: Cat, Sofa\nQ: What is the dog on the sofa doing?\n"
        "Reference: There is no dog; a cat is sleeping on the sofa.\nAnswer: A\n"
    )
    # the template has no "### LMM Response" heading: the server sees the marker anyway
    assert judge(items[0], "[[5]]").endswith("Rating: 5, as explained.")
    assert judge_server.requests[-1]["body"]["max_tokens"] == 64
    with pytest.raises(ValueError, match="exactly four"):
        MMHalJudge(client, "m", template="{} {} {}")
    with pytest.raises(ValueError, match="exactly four"):
        MMHalJudge(client, "m", template="{a} {} {} {}")
    with pytest.raises(EndpointError, match="answered 400 for the MMHal judgement of question 0"):
        judge(items[0], "[[error]]")
    with pytest.raises(ValueError, match="4 MMHal questions but 1 answers"):
        score_mmhal(items, ["x"], judge)
