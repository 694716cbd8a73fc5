"""Object HalBench's GPT path against a loopback chat server with scripted replies.

Expected values are derived by hand from RLAIF-V's ``eval_gpt_obj_halbench.py`` (``--use_gpt``):
answers of <= 3 words get no request; a reply is read from a ```json fence or from the last line
of a reply holding ``["``; each object becomes its two-word name or its nouns; duplicates go.
spaCy's ``en_core_web_trf`` and NLTK's tagger are not installed here, so the post-processing runs
on its recorded fallback (WordNet lemmas, every word but an article a noun), and the figures say
they are approximate.
"""

from __future__ import annotations

import http.server
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmrlaif.cli import main
from mmrlaif.evaluation.hallucination.chair import ChairVocabulary
from mmrlaif.evaluation.hallucination.common import DataRoot
from mmrlaif.evaluation.hallucination.nlp import ReferenceNlp, reference_marks
from mmrlaif.evaluation.hallucination.object_halbench_llm import (
    EXTRACTION_PROMPT,
    LLMObjectExtractor,
    object_halbench_llm_metrics,
    parse_object_list,
    refine_objects,
)
from mmrlaif.models.openai_client import EndpointError, OpenAIClient
from tests.servers import send_json, serve_http

# answer -> the scripted replies, one per request (the last one repeats)
REPLIES = {
    "A man and a woman walk a dog past two cats.": [
        'Sure.\n```json\n["man", "woman", "dog", "cats", "dog"]\n```'
    ],
    "A toilet and a sink; the toilet seat is white.": [
        "I cannot tell.",  # unreadable: asked again
        'Objects:\n["toilet", "sink", "toilet seat"]',
    ],
    "Forever unreadable answer, five words.": ["no list here"],
}


@pytest.fixture()
def extractor_server() -> Iterator[tuple[str, list[dict]]]:
    requests: list[dict] = []
    served: dict[str, int] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append(body)
            prompt = body["messages"][0]["content"]
            answer = prompt.split("[Start of Examiner's Answer]\n\n")[1].split("\n\n[End")[0]
            replies = REPLIES[answer]
            n = served.get(answer, 0)
            served[answer] = n + 1
            content = replies[min(n, len(replies) - 1)]
            send_json(self, 200, {"choices": [{"message": {"content": content}}]})

    with serve_http(Handler, "extractor") as root:
        yield f"{root}/v1", requests


@pytest.fixture()
def vocabulary(fixtures_dir: Path) -> ChairVocabulary:
    return ChairVocabulary.load(DataRoot(fixtures_dir / "object_halbench", "oh"), "rlaifv")


def test_parse_object_list() -> None:
    assert parse_object_list('```json\n["a", "b"]\n```') == ["a", "b"]
    assert parse_object_list('Here:\n["cup"]') == ["cup"]
    for bad in ('["cup"] is it', "[]", "nothing"):
        with pytest.raises(ValueError, match="not json interpretable"):
            parse_object_list(bad)


def test_refine_objects_two_word_names_then_nouns(vocabulary) -> None:
    nlp = ReferenceNlp(spacy_model=None, missing=("averaged_perceptron_tagger_eng",))
    # "a hot dogs" -> lemmas a, hot, dog -> the two-word name "hot dog"; "dining table" too;
    # "dogs" -> "dog"; "red car" has no two-word name -> its nouns "red car" (no tagger here);
    # duplicates dropped
    refined = refine_objects(
        ["hot dogs", "dining table", "dogs", "dog", "red car"], vocabulary, nlp
    )
    assert refined == ["hot dog", "dining table", "dog", "red car"]
    assert vocabulary.object_words(refined) == [
        ("hot dog", "hot dog"),
        ("dining table", "dining table"),
        ("dog", "dog"),
    ]
    assert reference_marks(nlp)["reference"] is False


def test_gpt_path_figures(extractor_server, vocabulary) -> None:
    url, requests = extractor_server
    extractor = LLMObjectExtractor(OpenAIClient(url, retries=0), "gpt-3.5-turbo-0613")
    nlp = ReferenceNlp(spacy_model=None, missing=("averaged_perceptron_tagger_eng",))
    questions = ["Describe the image.", "What is here?", "Describe."]
    answers = [
        "Assistant: A man and a woman walk a dog past two cats.",
        "A toilet and a sink; the toilet seat is white.",
        "A dog.",  # <= 3 words: no request, no objects
    ]
    truth = [{"person", "dog"}, {"toilet", "sink"}, {"dog"}]
    result, objects = object_halbench_llm_metrics(
        questions, answers, truth, vocabulary, extractor, nlp
    )
    # answer 1: man, woman, dog, cat (cats -> cat; the second dog dropped) -> person, person,
    #   dog, cat: 4 words, cat hallucinated
    # answer 2: toilet, sink, toilet seat -> toilet (the two-word name); "toilet" twice in the
    #   list is deduplicated -> toilet, sink: 2 words, none hallucinated
    assert objects == [["man", "woman", "dog", "cat"], ["toilet", "sink"], []]
    assert (result.n_words, result.n_hallucinated_words) == (6, 1)
    assert result.chair_i == pytest.approx(1 / 6)
    assert result.chair_s_refine == pytest.approx(1 / 2)  # 1 of the 2 answers with objects
    assert result.chair_s == pytest.approx(1 / 3)
    # distinct correct: {person, dog} + {toilet, sink} over 2 + 2 + 1
    assert result.object_recall == pytest.approx(4 / 5)
    # the reference prompt as the system message, the answer without "Assistant:"; the unreadable
    # reply was asked again; the short answer never
    assert len(requests) == 3
    first = requests[0]
    assert first["model"] == "gpt-3.5-turbo-0613" and first["messages"][0]["role"] == "system"
    assert first["messages"][0]["content"] == EXTRACTION_PROMPT.replace(
        "{question}", "Describe the image."
    ).replace("{answer}", "A man and a woman walk a dog past two cats.")
    with pytest.raises(
        EndpointError,
        match=r"no readable object list from 'gpt-3.5-turbo-0613' for answer 0 \(ValueError",
    ):
        object_halbench_llm_metrics(
            ["Q"], ["Forever unreadable answer, five words."], [set()], vocabulary, extractor, nlp
        )


def test_bench_score_objhal_by_llm(extractor_server, fixtures_dir, tmp_path) -> None:
    url, _ = extractor_server
    root = tmp_path / "oh"
    root.mkdir()
    for name in ("synonyms_refine.txt",):
        (root / name).write_text((fixtures_dir / "object_halbench" / name).read_text())
    (root / "annotations").mkdir()
    for file in (fixtures_dir / "object_halbench" / "annotations").iterdir():
        (root / "annotations" / file.name).write_text(file.read_text())
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        json.dumps(
            {
                "image_id": 101,
                "question": "Describe.",
                "answer": "A man and a woman walk a dog past two cats.",
            }
        )
    )
    out = tmp_path / "scored.json"
    argv = ["bench", "score", "--benchmark", "objhal", "--data", str(root)]
    argv += ["--answers", str(answers), "--out", str(out)]
    argv += ["--set", "eval.benchmarks.objhal_extractor=llm"]
    argv += ["--set", f"eval.benchmarks.objhal_extractor_endpoint={url}"]
    assert main(argv) == 0
    scored = json.loads(out.read_text())
    # truth of image 101: dog, person, car -> cat hallucinated: 1 of 4
    assert scored["headline"]["object_halbench_mention_hallucination_rate"] == pytest.approx(0.25)
    assert scored["result"]["extractor"] == "llm" and scored["result"]["reference"] is False
    assert any("en_core_web_trf" in a for a in scored["result"]["approximate"])
