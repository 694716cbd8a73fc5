"""run_benchmarks end to end: local and S3 data, a fake model, the loopback judge, bad setups.

The fake model answers from a table keyed by (image colour index k, prompt); the answers are
those of the per-benchmark tests, so the figures are the hand-derived ones there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmrlaif.config.strict import ConfigError
from mmrlaif.evaluation.hallucination import (
    BenchmarkDataError,
    BenchmarkFormatError,
    BenchmarkOptions,
    MMHalJudge,
    run_benchmarks,
)
from mmrlaif.models.openai_client import OpenAIClient

DESCRIBE = "Describe this image."
ANSWERS = {
    # POPE random: TP, TN, FN, FP, TP (unparsed), TN -> accuracy 4/6 (test_bench_pope.py)
    (1, "Is there a dog in the image?"): "Yes, there is a dog.",
    (1, "Is there a cat in the image?"): "No. There is no cat.",
    (2, "Is there a car in the image?"): "There is not a car. Actually yes.",
    (2, "Is there a kite in the image?"): "Yes.",
    (3, "Is there a person in the image?"): "I think so",
    (3, "Is there a bus in the image?"): "There isn't a bus, no.",
    # POPE popular: dog (yes, TP) as above, person (no, TN) -> accuracy 1, yes-ratio 1/2
    (1, "Is there a person in the image?"): "No.",
    # POPE adversarial: car (yes -> FN) as above, truck (no -> FP) -> accuracy 0, F1 0
    (2, "Is there a truck in the image?"): "Yes, a truck.",
    # AMBER (test_bench_amber.py): CHAIR 3/11, Cover 5/8, Hal 2/3, Cog 1/3; accuracy 4/7, F1 4/7
    (1, DESCRIBE): "The men and people walk a dog on the ground under a cloud near a car. "
    "A man can see chairs.",
    (2, DESCRIBE): "A boat on the water near trees.",
    (3, DESCRIBE): "A can of soda.",
    (1, "Is there a dog in this image?"): "Yes, there is.",
    (1, "Is there a car in this image?"): "No.",
    (1, "Is the grass dry in this image?"): "Yes.",
    (2, "Are there two ships in this image?"): "No, there are three.",
    (1, "Is the man running in this image?"): "The man is not running.",
    (1, "Is the dog next to the man in this image?"): "Yes",
    (2, "Is the ship on the tree in this image?"): "Maybe",
    # Object HalBench (test_bench_object_halbench.py): 2/3, 4/11, recall 5/9
    (1, "Describe this image in detail."): "A man and a woman walk a dog. A cat sits on a bench.",
    (2, "What do you see happening in this image?"): "A toilet and a sink. "
    "The toilet seat is white.",
    (3, "Describe this image in detail."): "A close-up of coffee.",
    (4, "Provide a thorough description of the given picture."): "A hot dog and a teddy bear "
    "on a bed.",
    # MMHal (test_bench_mmhal.py): the judge rates 6, both (-> 0), 2, 3 -> 2.75, 0.5
    (1, "What colour is the animal on the branch?"): "Black and white. [[6]]",
    (2, "What is the dog on the sofa doing?"): "It sleeps. [[both]]",
    (3, "How many cars are parked on the street?"): "Two cars. [[2]]",
    (4, "What shape is the cake?"): "Round. [[3]]",
}
EXPECTED = {
    "pope_random_accuracy": 4 / 6,
    "pope_random_f1": 2 / 3,
    "pope_random_yes_ratio": 0.5,
    "pope_popular_accuracy": 1.0,
    "pope_adversarial_f1": 0.0,
    # AMBER as inference.py prints it (/ 100): CHAIR 3/11.001 -> 27.3, Cover 5/8.001 -> 62.5,
    # Hal 100 - 1/3.001 -> 66.7, Cog 2/6.001 -> 33.3; only exact "Yes"/"No" are answers: the
    # one exact "Yes" (id 9) is right -> accuracy 1/7.001 -> 14.3; no "No" answer -> P, R, F1 0
    "amber_chair": 0.273,
    "amber_cover": 0.625,
    "amber_hal": 0.667,
    "amber_cog": 0.333,
    "amber_accuracy": 0.143,
    "amber_f1": 0.0,
    "amber_amber_score": (100 - 27.3 + 0.0) / 200,
    "object_halbench_response_hallucination_rate": 2 / 3,
    "object_halbench_mention_hallucination_rate": 4 / 11,
    "object_halbench_object_recall": 5 / 9,
    "mmhal_score": 2.75,
    "mmhal_hallucination_rate": 0.5,
}


def test_all_four_benchmarks_local(bench_data, fake_model, judge_server, tmp_path: Path) -> None:
    model = fake_model(ANSWERS)
    judge = MMHalJudge(OpenAIClient(judge_server.base_url, retries=0), "judge")
    out = tmp_path / "out"
    report = run_benchmarks(
        ["pope", "amber", "object_halbench", "mmhal"],
        bench_data,
        model,
        judge=judge,
        out_dir=out,
        options=BenchmarkOptions(batch_size=4),
    )
    for key, value in EXPECTED.items():
        assert report.headline[key] == pytest.approx(value), key
    assert list(report.results) == ["pope", "amber", "object_halbench", "mmhal"]
    assert report.results["pope"]["random"]["n_unparsed"] == 1
    assert report.results["mmhal"]["score_by_type"]["attribute"] == 4.5
    # 10 POPE + 10 AMBER + 4 Object HalBench + 4 MMHal questions, in batches of at most 4
    assert sum(len(b) for b in model.batches) == 28
    assert max(len(b) for b in model.batches) == 4
    assert len(judge_server.requests) == 4
    written = json.loads((out / "benchmarks.json").read_text())
    assert written["headline"]["amber_chair"] == pytest.approx(0.273)
    assert set(written["seconds"]) == set(report.results)
    oh = json.loads((out / "answers" / "object_halbench.json").read_text())
    assert oh[1]["gt_objects"] == ["sink", "toilet"]
    assert oh[1]["answer"] == "A toilet and a sink. The toilet seat is white."
    mmhal = json.loads((out / "answers" / "mmhal.json").read_text())
    assert [row["rating"] for row in mmhal] == [6, 0, 2, 3]
    assert mmhal[1]["judge_reply"] == "It could be Rating: 1 or Rating: 5."


def test_data_and_report_on_s3(bench_data, fake_model, s3_env, moto_server) -> None:
    client = moto_server.boto3_client()
    for name in ("pope", "amber", "object_halbench"):
        for path in bench_data[name].rglob("*"):
            if path.is_file():
                key = f"bench/{name}/{path.relative_to(bench_data[name]).as_posix()}"
                client.put_object(Bucket=s3_env.bucket, Key=key, Body=path.read_bytes())
    data_dirs = {n: f"s3://{s3_env.bucket}/bench/{n}" for n in ("pope", "amber", "object_halbench")}
    report = run_benchmarks(
        ["object_halbench", "amber", "pope", "amber"],  # a repeat is run once
        data_dirs,
        fake_model(ANSWERS),
        out_dir=f"s3://{s3_env.bucket}/reports/run1",
    )
    assert list(report.results) == ["object_halbench", "amber", "pope"]
    for key, value in EXPECTED.items():
        if not key.startswith("mmhal"):
            assert report.headline[key] == pytest.approx(value), key
    body = client.get_object(Bucket=s3_env.bucket, Key="reports/run1/benchmarks.json")["Body"]
    assert json.loads(body.read())["headline"] == pytest.approx(report.headline)
    answers = client.get_object(Bucket=s3_env.bucket, Key="reports/run1/answers/pope.json")
    assert len(json.loads(answers["Body"].read())) == 10


# A judge that is never asked (its port is not listened on).
_UNUSED_JUDGE = MMHalJudge(OpenAIClient("http://127.0.0.1:9/v1", retries=0), "unused")


def _never(batch):
    raise AssertionError("the model must not be asked before all data is checked")


def test_missing_data_is_a_config_error(bench_data, tmp_path: Path) -> None:
    # every benchmark's data is checked before any answer: pope is fine, amber is not
    with pytest.raises(BenchmarkDataError, match=r"'amber': no data folder configured") as err:
        run_benchmarks(["pope", "amber"], {"pope": bench_data["pope"]}, _never)
    assert isinstance(err.value, ConfigError) and err.value.benchmark == "amber"
    assert err.value.path == "data_dirs['amber']"
    with pytest.raises(BenchmarkDataError, match=r"'pope': data folder not found: .*nowhere"):
        run_benchmarks(["pope"], {"pope": tmp_path / "nowhere"}, _never)
    (bench_data["amber"] / "data" / "safe_words.txt").unlink()
    with pytest.raises(
        BenchmarkDataError, match=r"'amber': file not found: .*amber/data/safe_words\.txt"
    ):
        run_benchmarks(["amber"], bench_data, _never)
    (bench_data["mmhal"] / "images" / "30000000002_bbbbbbbbbb_o.jpg").unlink()
    with pytest.raises(
        BenchmarkDataError,
        match=r"'mmhal': image of mmhal/2 \(30000000002_bbbbbbbbbb_o\) not found: "
        r".*mmhal/images/30000000002_bbbbbbbbbb_o\.jpg",
    ):
        run_benchmarks(["mmhal"], bench_data, _never, judge=_UNUSED_JUDGE)
    with pytest.raises(ConfigError, match="'mmhal' needs a judge"):
        run_benchmarks(["mmhal"], bench_data, _never)
    with pytest.raises(ConfigError, match=r"unknown benchmark\(s\) \['chair'\]"):
        run_benchmarks(["pope", "chair"], bench_data, _never)
    with pytest.raises(ConfigError, match="no benchmark named"):
        run_benchmarks([], bench_data, _never)
    (bench_data["pope"] / "coco_pope_random.json").write_text('{"question_id": 1}\n')
    with pytest.raises(BenchmarkFormatError, match=r"coco_pope_random\.json: line 1"):
        run_benchmarks(["pope"], bench_data, _never)


def test_bad_answer_fn(bench_data) -> None:
    with pytest.raises(ValueError, match=r"returned 1 answers for a batch of 8 \(pope/random/1 "):
        run_benchmarks(["pope"], bench_data, lambda batch: ["Yes"])
    with pytest.raises(TypeError, match="answer_fn returned NoneType for pope/random/1"):
        run_benchmarks(["pope"], bench_data, lambda batch: [None] * len(batch))


def test_limit_and_options(bench_data, fake_model) -> None:
    model = fake_model(ANSWERS)
    opts = BenchmarkOptions(limit=2, pope_splits=("random",), batch_size=1)
    report = run_benchmarks(["pope", "amber"], bench_data, model, options=opts)
    # first two random questions (TP, TN), first two AMBER queries (generative only)
    assert report.headline["pope_random_accuracy"] == 1.0
    assert report.results["amber"]["discriminative"] is None
    assert "amber_f1" not in report.headline
    # AMBER: nouns 8 + 2, hallucinated 2 + 0 -> CHAIR 2/10.001 -> 20.0
    assert report.headline["amber_chair"] == pytest.approx(0.2)
    assert [len(b) for b in model.batches] == [1, 1, 1, 1]
    generative = BenchmarkOptions(amber_query_file="query_generative.json")
    assert run_benchmarks(["amber"], bench_data, model, options=generative).headline[
        "amber_hal"
    ] == pytest.approx(0.667)
    # the lenient reading of AMBER's yes/no answers is not AMBER's: the result says so
    lenient = BenchmarkOptions(amber_answer_rule="lenient", amber_query_file="query_all.json")
    result = run_benchmarks(["amber"], bench_data, model, options=lenient).results["amber"]
    assert (result["answer_rule"], result["reference"]) == ("lenient", False)
    assert result["discriminative"]["overall"]["n_correct"] == 4
    for bad in (
        {"batch_size": 0},
        {"limit": 0},
        {"pope_file_pattern": "pope.json"},
        {"amber_answer_rule": "strict"},
    ):
        with pytest.raises(ConfigError):
            BenchmarkOptions(**bad)
