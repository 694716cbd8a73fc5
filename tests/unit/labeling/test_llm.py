import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import torch

from mmrlaif.config import ConfigError, LabelingConfig, ModelConfig
from mmrlaif.labeling.claims import Claim
from mmrlaif.labeling.llm import (
    EXTRACT_PROMPT,
    EXTRACT_TOKENS,
    QUESTION_PROMPT,
    QUESTION_TOKENS,
    LLMClaimExtractor,
    LLMQuestionBuilder,
    TextGenerator,
    parse_bullets,
    truncate_words,
)
from mmrlaif.labeling.stage import make_divide
from mmrlaif.models.openai_client import OpenAIClient, OpenAITextGenerator
from mmrlaif.models.tiny import build_tiny_causal_lm

RESPONSE = "There is a cup and a dog. It is lovely."
FACTS = "- There is a cup.\n- There is a dog.</s>"
CLAIM = "There is a cup."
QUESTION = " Is there a cup?</s>"


def test_parse_bullets_and_truncation():
    assert parse_bullets("- a\n-b\n  - c \n- ") == ["a", "c"]
    assert parse_bullets("no list here") is None
    assert truncate_words("a b c d", 2) == "a b"
    assert len(truncate_words("w " * 400).split()) == 300


def trained_lm():
    """A tiny causal LM overfit to answer the two prompts the way an instruct model would."""
    extract = EXTRACT_PROMPT.format(question="Describe the image.", answer=RESPONSE)
    rewrite = QUESTION_PROMPT.format(claim=CLAIM)
    texts = [extract + FACTS, rewrite + QUESTION]
    model, tok = build_tiny_causal_lm([*texts, extract, rewrite], hidden=64, layers=2)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    batch = tok(texts, return_tensors="pt", padding=True, padding_side="right")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    for _ in range(150):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval(), tok


def test_llm_extractor_and_question_builder_with_a_tiny_lm(monkeypatch):
    model, tok = trained_lm()
    extractor = LLMClaimExtractor(TextGenerator(model, tok, 24))
    claims = extractor.extract(RESPONSE)
    assert [c.text for c in claims] == ["There is a cup.", "There is a dog."]
    assert extractor.counts == {}
    builder = LLMQuestionBuilder(TextGenerator(model, tok, 12))
    assert builder.question(Claim(CLAIM)) == "Is there a cup? Please answer yes or no."
    # the same LM behind a loopback /v1/completions gives the same claims and question
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    served = CompletionsServer(lambda b: TextGenerator(model, tok, b["max_tokens"])(b["prompt"]))
    with served:
        client = OpenAIClient(served.url)
        remote = LLMClaimExtractor(OpenAITextGenerator(client, "tiny-llm", 24))
        assert [c.text for c in remote.extract(RESPONSE)] == [c.text for c in claims]
        remote_builder = LLMQuestionBuilder(OpenAITextGenerator(client, "tiny-llm", 12))
        assert remote_builder.question(Claim(CLAIM)) == builder.question(Claim(CLAIM))
    assert len(served.requests) == 2 and client.stats.retries == 0


def test_unparsable_outputs_are_counted_not_fatal():
    model, tok = build_tiny_causal_lm([EXTRACT_PROMPT, QUESTION_PROMPT], hidden=32, layers=1)
    extractor = LLMClaimExtractor(TextGenerator(model, tok, 8))
    assert extractor.extract(RESPONSE) == []
    assert extractor.extract("") == []  # empty responses are not sent at all
    assert extractor.counts == {"unparsed_extraction": 1}
    builder = LLMQuestionBuilder(TextGenerator(model, tok, 4))
    q = builder.question(Claim("The cup is red."))
    assert q == "Is it true that The cup is red? Please answer yes or no."
    assert builder.counts == {"unparsed_question": 1}


# --------------------------------------------------------------------------------------------
# The LLM parts over an OpenAI-compatible endpoint (a loopback /v1/completions)
# --------------------------------------------------------------------------------------------


class CompletionsServer:
    """A loopback ``POST /v1/completions`` answering ``respond(body)``; records the bodies."""

    def __init__(self, respond: Callable[[dict[str, Any]], str]) -> None:
        self.respond = respond
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                ok = self.path == "/v1/completions"
                text = server.respond(body) if ok else ""
                data = json.dumps({"choices": [{"index": 0, "text": text}]}).encode()
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "CompletionsServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def instruct(body: dict[str, Any]) -> str:
    """What an instruct LLM would answer, derived from the prompt by rule."""
    prompt = body["prompt"]
    if "\nFacts:\n" in prompt:  # one bullet per sentence, opinions left out
        answer = prompt.split("\nAnswer: ", 1)[1].split("\nFacts:", 1)[0]
        facts = [f.strip() for f in answer.split(".") if f.strip() and "lovely" not in f]
        return "".join(f"- {f}.\n" for f in facts)
    if "\nStatement: There is " in prompt:
        rest = prompt.split("\nStatement: There is ", 1)[1].split("\nQuestion:", 1)[0]
        return f" Is there {rest.rstrip('.')}?\nStatement:"
    return "Sure! Here is the answer."


@pytest.fixture()
def llm_server(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with CompletionsServer(instruct) as server:
        yield server


def test_extractor_and_builder_over_an_endpoint(llm_server):
    client = OpenAIClient(llm_server.url)
    extractor = LLMClaimExtractor(OpenAITextGenerator(client, "served-llm", EXTRACT_TOKENS))
    claims = extractor.extract("There is a cup. There is a dog. It is lovely.")
    assert [c.text for c in claims] == ["There is a cup.", "There is a dog."]
    builder = LLMQuestionBuilder(OpenAITextGenerator(client, "served-llm", QUESTION_TOKENS))
    assert builder.question(claims[1]) == "Is there a dog? Please answer yes or no."
    assert extractor.counts == {} and builder.counts == {}
    extract, question = llm_server.requests
    assert extract == {
        "model": "served-llm",
        "prompt": EXTRACT_PROMPT.format(
            question="Describe the image.", answer="There is a cup. There is a dog. It is lovely."
        ),
        "max_tokens": EXTRACT_TOKENS,
        "temperature": 0.0,
    }
    assert question["prompt"] == QUESTION_PROMPT.format(claim="There is a dog.")
    assert question["max_tokens"] == QUESTION_TOKENS and question["temperature"] == 0.0
    # unparsable answers are counted, not fatal, over HTTP too
    assert builder.question(Claim("The cup is red.")) == (
        "Is it true that The cup is red? Please answer yes or no."
    )
    assert builder.counts == {"unparsed_question": 1}
    assert (client.stats.requests, client.stats.retries, client.stats.failures) == (3, 0, 0)


def test_make_divide_calls_the_endpoint_and_loads_nothing(llm_server, monkeypatch):
    import transformers

    def no_loading(*args, **kwargs):
        raise AssertionError("nothing should be loaded when labeling.llm_endpoint is set")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_loading)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", no_loading)
    cfg = LabelingConfig(
        extractor="llm",
        question_builder="llm",
        llm_name_or_path="served-llm",
        llm_endpoint=llm_server.url,
    )
    extractor, builder = make_divide(cfg, ModelConfig())
    assert isinstance(extractor.generate, OpenAITextGenerator)
    assert extractor.generate.client is builder.generate.client  # one client, one set of stats
    assert (extractor.generate.budget, builder.generate.budget) == (EXTRACT_TOKENS, QUESTION_TOKENS)
    [claim] = extractor.extract("There is a lamp.")
    assert builder.question(claim) == "Is there a lamp? Please answer yes or no."
    assert {r["model"] for r in llm_server.requests} == {"served-llm"}
    with pytest.raises(ConfigError, match="labeling.llm_name_or_path .*labeling.llm_endpoint"):
        make_divide(LabelingConfig(extractor="llm", llm_endpoint=llm_server.url), ModelConfig())


def test_the_extractor_sees_the_items_question_and_a_prompt_cut_to_300_words():
    from mmrlaif.labeling.llm import EXTRACT_PROMPT, LLMClaimExtractor

    seen: list[str] = []

    def generate(prompt: str) -> str:
        seen.append(prompt)
        return "- There is a cup."

    extractor = LLMClaimExtractor(generate)
    assert extractor.extract("A cup.", "What is on the table?") == [Claim("There is a cup.")]
    assert seen[0] == EXTRACT_PROMPT.format(question="What is on the table?", answer="A cup.")
    extractor.extract("A cup.")  # no question given: the extractor's default
    assert "Question: Describe the image.\n" in seen[1]
    # the reference cuts the whole prompt (template + question + answer) to 300 words
    template_words = len(EXTRACT_PROMPT.format(question="Q?", answer="").split())
    long_answer = " ".join(f"w{i}" for i in range(400))
    extractor.extract(long_answer, "Q?")
    assert len(seen[2].split()) == 300
    assert seen[2].split()[-1] == f"w{300 - template_words}"  # "Facts:" is cut off
    assert seen[2].startswith(EXTRACT_PROMPT.split("\n")[0] + "\nQuestion: Q?\nAnswer: w0 w1")
