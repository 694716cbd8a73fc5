import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import torch

from mmrlaif.config import ConfigError, LabelingConfig, ModelConfig, parse_config
from mmrlaif.labeling.claims import Claim
from mmrlaif.labeling.llm import (
    EXTRACT_PROMPT,
    QUESTIONS_PROMPT,
    LLMClaimExtractor,
    LLMQuestionBuilder,
    TextGenerator,
    parse_bullets,
    parse_rlaifv_list,
    stop_token_ids,
    text_generators,
    truncate_spaces,
    truncate_words,
)
from mmrlaif.labeling.stage import make_divide
from mmrlaif.models.openai_client import OpenAIClient, OpenAITextGenerator, call_seed
from mmrlaif.toyworld.tiny import build_tiny_causal_lm

RESPONSE = "There is a cup and a dog. It is lovely."
FACTS = "- There is a cup.\n- There is a dog."
CLAIMS = [Claim("There is a cup."), Claim("There is a dog.")]
QUESTIONS = "- Is there a cup?\n- Is there a dog?"

#: A Llama-3-style chat template (BOS, role headers, end of turn ``<|eot_id|>``).
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim }}"
    "{{ '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)
HEADERS = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def chat_lm(corpus: list[str], hidden: int = 64, layers: int = 2, seed: int = 0):
    """A tiny Llama and a BPE tokenizer with the Llama-3-style template (BOS ``<s>``, EOS
    ``</s>``, end of turn ``<|eot_id|>``), built with transformers' own classes."""
    return build_tiny_causal_lm(
        corpus, hidden, layers, seed, special_tokens=HEADERS, chat_template=LLAMA3_TEMPLATE
    )


def user_turn(text: str) -> str:
    """What the template renders for one user turn with the generation prompt, by hand."""
    return (
        f"<s><|start_header_id|>user<|end_header_id|>\n\n{text.strip()}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_parsing_and_truncation():
    assert parse_bullets("- a\n-b\n  - c \n- ") == ["a", "c"]
    assert parse_bullets("no list here") is None
    assert truncate_words("a b c d", 2) == "a b"
    assert len(truncate_words("w " * 400).split()) == 300
    # the reference's get_facts: '###' lines skipped, the first character dropped
    assert parse_rlaifv_list("### Facts:\n- A cup.\n\n-A dog.\n*  \n") == ["A cup.", "A dog."]
    assert parse_rlaifv_list("   \n### Facts:\n") is None
    # the reference's cut splits on single spaces: a line break joins two words into one
    assert truncate_spaces("a b\nc d e", 2) == "a b\nc"
    assert truncate_spaces("a  b c", 2) == "a "


def test_the_generator_prompts_through_the_chat_template_and_stops_at_end_of_turn():
    model, tok = chat_lm(["hello world"], hidden=32, layers=1)
    generate = TextGenerator(model, tok, 4)
    prompt = "Describe it. "
    assert generate.chat_prompt(prompt) == user_turn(prompt)
    assert generate.chat_prompt(prompt) == tok.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    assert stop_token_ids(model, tok) == [tok.eos_token_id, eot] == generate.stops
    # the prompt's ids are the template's own (one BOS, no special tokens added on top)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=True, add_generation_prompt=True
    )
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    encoded = tok(generate.chat_prompt(prompt), add_special_tokens=False)["input_ids"]
    assert encoded == list(ids) and encoded.count(tok.bos_token_id) == 1


def test_a_model_without_a_chat_template_is_an_error(tmp_path):
    model, tok = chat_lm(["hello world"], hidden=32, layers=1)
    tok.chat_template = None
    with pytest.raises(ValueError, match="has no chat template"):
        TextGenerator(model, tok, 4)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="has no chat template .*a base LM"):
        text_generators(str(tmp_path))


def test_in_process_sampling_is_seeded_per_call():
    model, tok = chat_lm(["a cup and a dog on a table"], hidden=32, layers=1)
    with torch.no_grad():  # a spread next-token distribution: draws differ from greedy
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    sample = TextGenerator(model, tok, 8, temperature=1.0, seed=3)
    first = sample("a cup")
    sample("a dog")  # another call in between changes nothing
    assert sample("a cup") == first
    assert TextGenerator(model, tok, 8, temperature=1.0, seed=3)("a cup") == first
    assert sample.complete("a cup", call_seed(3, "a cup")) == first
    torch.manual_seed(123)  # the global stream plays no part
    assert sample("a cup") == first
    draws = {sample.complete("a cup", s) for s in range(6)}
    assert len(draws) > 1  # the seed matters
    # top-k 1 or a tiny nucleus leaves the arg-max only: the draw is the greedy reply
    greedy = TextGenerator(model, tok, 8)("a cup")
    assert TextGenerator(model, tok, 8, temperature=1.0, top_k=1, seed=5)("a cup") == greedy
    assert TextGenerator(model, tok, 8, temperature=0.5, top_p=1e-6, seed=5)("a cup") == greedy


def trained_lm():
    """A tiny chat LM overfit to answer the extraction and question prompts, each *as its
    chat template renders it*, ending its reply with ``<|eot_id|>``."""
    extract = user_turn(EXTRACT_PROMPT.format(question="What is here?", answer=RESPONSE))
    rewrite = user_turn(QUESTIONS_PROMPT.format(statements=FACTS))
    pairs = [(extract, FACTS + "<|eot_id|>"), (rewrite, QUESTIONS + "<|eot_id|>")]
    model, tok = chat_lm([p + r for p, r in pairs], hidden=64, layers=2)
    # the prompt's ids as the generator encodes them, then the reply's: tokenised as one
    # string, the template's closing blank line would split differently before the "-"
    seqs = [
        tok(p, add_special_tokens=False)["input_ids"]
        + tok(r, add_special_tokens=False)["input_ids"]
        for p, r in pairs
    ]
    width = max(map(len, seqs))
    ids = torch.tensor([s + [tok.pad_token_id] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    labels = ids.masked_fill(mask == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(150):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval(), tok


def test_llm_parts_with_a_tiny_chat_lm_at_the_reference_sampling(monkeypatch):
    model, tok = trained_lm()
    reference = {"temperature": 0.2, "top_p": 0.9, "top_k": 50, "seed": 0}
    extractor = LLMClaimExtractor(TextGenerator(model, tok, 24, **reference))
    assert extractor.extract(RESPONSE, "What is here?") == CLAIMS
    assert extractor.counts == {}
    builder = LLMQuestionBuilder(TextGenerator(model, tok, 24, **reference))
    assert builder.questions(CLAIMS) == [
        "Is there a cup? Please answer yes or no.",
        "Is there a dog? Please answer yes or no.",
    ]
    # the same LM behind a loopback /v1/chat/completions, drawing with each request's seed
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def serve(body: dict[str, Any]) -> str:
        [message] = body["messages"]
        settings = (body["temperature"], body["top_p"], body.get("top_k", 0))
        local = TextGenerator(model, tok, body["max_tokens"], *settings)
        return local.complete(message["content"], body["seed"])

    with ChatServer(serve) as served:
        client = OpenAIClient(served.url)
        remote = LLMClaimExtractor(OpenAITextGenerator(client, "tiny-llm", 24, **reference))
        assert remote.extract(RESPONSE, "What is here?") == CLAIMS
        remote_builder = LLMQuestionBuilder(
            OpenAITextGenerator(client, "tiny-llm", 24, **reference)
        )
        assert remote_builder.questions(CLAIMS) == builder.questions(CLAIMS)
    assert len(served.requests) == 2 and client.stats.retries == 0


def test_unparsable_outputs_are_counted_not_fatal():
    extractor = LLMClaimExtractor(lambda prompt: "I cannot help with that.")
    assert extractor.extract(RESPONSE) == []
    assert extractor.extract("") == []  # empty responses are not sent at all
    assert extractor.counts == {"unparsed_extraction": 1}
    builder = LLMQuestionBuilder(lambda prompt: "Sure.")
    assert builder.questions([Claim("The cup is red.")]) == [
        "Is it true that The cup is red? Please answer yes or no."
    ]
    assert builder.questions([]) == []  # no claims, no call
    assert builder.counts == {"unparsed_question": 1}


def test_questions_are_one_call_per_response_zipped_back_as_the_reference():
    prompts: list[str] = []

    def rewrite(answer: str) -> Callable[[str], str]:
        return lambda prompt: prompts.append(prompt) or answer

    claims = [Claim("There is a cup."), Claim("The cup is not red.")]
    builder = LLMQuestionBuilder(rewrite("- Is there a cup?\n- Is the cup not red?"))
    assert builder.questions(claims) == [
        "Is there a cup? Please answer yes or no.",
        "Is the cup not red? Please answer yes or no.",
    ]
    assert prompts == [
        "Rewrite each statement below as a general question that can be answered with yes or "
        "no. Keep the tense and any negation of the statement and add nothing. Output the "
        "questions as a list in the order of the statements, one per statement, each line "
        "beginning with '- '.\nStatements:\n- There is a cup.\n- The cup is not red.\n"
        "Questions:\n"
    ]
    # fewer questions than claims: the response fails (the reference drops its pairs)
    short = LLMQuestionBuilder(rewrite("- Is there a cup?"))
    assert short.questions(claims) == [
        "Is it true that There is a cup? Please answer yes or no.",
        "Is it true that The cup is not red? Please answer yes or no.",
    ]
    assert short.counts == {"mismatched_questions": 1}
    # more: the extra ones are dropped (the reference's zip)
    long = LLMQuestionBuilder(rewrite("- Is there a cup?\n- Is the cup not red?\n- Is it?"))
    assert long.questions(claims)[1] == "Is the cup not red? Please answer yes or no."
    assert long.counts == {}


# The reference's prompts, written out from RLAIF-V utils/llama3_8b_inference.py.
SPLIT = (
    "You are an expert in extracting facts from the given question-answer pair for an image. "
    "Your task is to extract and rewrite the facts mentioned in the question-answer pair into "
    "self-contained sentences. Exclude opinions or subjective statements.\n\nYou should "
    "present your result in the following format:\n### Facts:\n- {Extracted fact 1}\n- "
    "{Extracted fact 2}\n- ...\n\n### Question-answer pair:\nQuestion: "
)
CHANGEQ = (
    "You are an expert at modifying a given declarative sentence into a general question "
    "sentence. Your task is to modify the given declarative sentences one by one into a "
    "general question form. Do not change tenses or add extra content.\n    If the given "
    "declarative sentence contains not, no or negative meaning words, you need to check the "
    "modified general interrogative sentence to make sure that the generated general question "
    "sentence retains words with not , no or negative meaning words.\n\nYou should present "
    "your result in the following format:\n### Modified sentences:\n- {Modified sentence 1}\n"
    "- {Modified sentence 2}\n- ...\n\n### Declarative sentences:"
)


def test_the_released_fine_tuned_models_prompt_format():
    seen: list[str] = []

    def split(prompt: str) -> str:
        seen.append(prompt)
        return "### Facts:\n- There is a cup.\n- The cup is not red."

    extractor = LLMClaimExtractor(split, prompt_format="rlaifv_finetuned")
    claims = extractor.extract("A cup, not a red one.", "What is on the table?")
    assert claims == [Claim("There is a cup."), Claim("The cup is not red.")]
    assert seen == [SPLIT + "What is on the table?\nAnswer: A cup, not a red one."]
    # the whole prompt is cut to 300 pieces split on single spaces, as the reference cuts it
    long_answer = " ".join(f"w{i}" for i in range(400))
    prompt = extractor.prompt(long_answer, "Q?")
    assert len(prompt.split(" ")) == 300
    assert (SPLIT + "Q?\nAnswer: " + long_answer).startswith(prompt)
    template_pieces = len((SPLIT + "Q?\nAnswer: w0").split(" "))  # "Answer: w0" is one piece
    assert prompt.endswith(f" w{300 - template_pieces}")

    asked: list[str] = []

    def changeq(prompt: str) -> str:
        asked.append(prompt)
        return "### Modified sentences:\n- Is there a cup?\n- Is the cup not red?"

    builder = LLMQuestionBuilder(changeq, prompt_format="rlaifv_finetuned")
    assert builder.questions(claims) == [
        "Is there a cup? Please answer yes or no.",
        "Is the cup not red? Please answer yes or no.",
    ]
    assert asked == [CHANGEQ + "\n- There is a cup.\n\n- The cup is not red.\n"]
    with pytest.raises(ValueError, match="prompt_format"):
        LLMClaimExtractor(split, prompt_format="chatml")


def test_the_extractor_sees_the_items_question_and_a_prompt_cut_to_300_words():
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
    LLMClaimExtractor(generate, max_words=12).extract(long_answer, "Q?")
    assert len(seen[3].split()) == 12


# --------------------------------------------------------------------------------------------
# The LLM parts over an OpenAI-compatible endpoint (a loopback /v1/chat/completions)
# --------------------------------------------------------------------------------------------


class ChatServer:
    """A loopback ``POST /v1/chat/completions`` answering ``respond(body)``; records the
    bodies (any other path: 404)."""

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
                ok = self.path == "/v1/chat/completions"
                text = server.respond(body) if ok else ""
                choice = {"index": 0, "message": {"role": "assistant", "content": text}}
                data = json.dumps({"choices": [choice]}).encode()
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

    def __enter__(self) -> "ChatServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def instruct(body: dict[str, Any]) -> str:
    """What an instruct LLM would answer, derived from the user message by rule."""
    [message] = body["messages"]
    prompt = message["content"]
    if "\nFacts:\n" in prompt:  # one bullet per sentence, opinions left out
        answer = prompt.split("\nAnswer: ", 1)[1].split("\nFacts:", 1)[0]
        facts = [f.strip() for f in answer.split(".") if f.strip() and "lovely" not in f]
        return "".join(f"- {f}.\n" for f in facts)
    if "\nStatements:\n" in prompt:
        statements = prompt.split("\nStatements:\n", 1)[1].split("\nQuestions:", 1)[0]
        if all(s.startswith("- There is ") for s in statements.splitlines()):
            rest = [s.removeprefix("- There is ").rstrip(".") for s in statements.splitlines()]
            return "".join(f"- Is there {r}?\n" for r in rest)
    return "Sure! Here is the answer."


@pytest.fixture()
def llm_server(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with ChatServer(instruct) as server:
        yield server


def test_extractor_and_builder_over_an_endpoint_send_the_sampling_settings(llm_server):
    client = OpenAIClient(llm_server.url)
    sampling = {"temperature": 0.2, "top_p": 0.9, "top_k": 50, "seed": 7}
    extractor = LLMClaimExtractor(OpenAITextGenerator(client, "served-llm", 256, **sampling))
    claims = extractor.extract("There is a cup. There is a dog. It is lovely.", "What is here?")
    assert claims == CLAIMS
    builder = LLMQuestionBuilder(OpenAITextGenerator(client, "served-llm", 256, **sampling))
    assert builder.questions(claims) == [
        "Is there a cup? Please answer yes or no.",
        "Is there a dog? Please answer yes or no.",
    ]
    assert extractor.counts == {} and builder.counts == {}
    extract, question = llm_server.requests
    prompt = EXTRACT_PROMPT.format(
        question="What is here?", answer="There is a cup. There is a dog. It is lovely."
    )
    assert extract == {
        "model": "served-llm",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 256,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 50,
        "seed": call_seed(7, prompt),
    }
    rewrite = QUESTIONS_PROMPT.format(statements="- There is a cup.\n- There is a dog.")
    assert question["messages"] == [{"role": "user", "content": rewrite}]
    assert question["seed"] == call_seed(7, rewrite) != extract["seed"]
    # the seed is the configured seed's and the prompt's: the same call, the same seed
    extractor.extract("There is a cup. There is a dog. It is lovely.", "What is here?")
    assert llm_server.requests[2]["seed"] == extract["seed"]
    # greedy sends temperature 0 and no sampling fields
    OpenAITextGenerator(client, "served-llm", 8)("x")
    assert llm_server.requests[3] == {
        "model": "served-llm",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 8,
        "temperature": 0.0,
    }
    # unparsable answers are counted, not fatal, over HTTP too
    assert builder.questions([Claim("The cup is red.")]) == [
        "Is it true that The cup is red? Please answer yes or no."
    ]
    assert builder.counts == {"unparsed_question": 1}
    assert (client.stats.requests, client.stats.retries, client.stats.failures) == (5, 0, 0)


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
        llm_temperature=0.5,
        llm_top_p=0.8,
        llm_top_k=0,
        llm_max_new_tokens=100,
        llm_seed=4,
    )
    extractor, builder = make_divide(cfg, ModelConfig())
    assert isinstance(extractor.generate, OpenAITextGenerator)
    assert extractor.generate.client is builder.generate.client  # one client, one set of stats
    [claim] = extractor.extract("There is a lamp.")
    assert builder.question(claim) == "Is there a lamp? Please answer yes or no."
    for body in llm_server.requests:
        assert body["model"] == "served-llm"
        assert (body["max_tokens"], body["temperature"], body["top_p"]) == (100, 0.5, 0.8)
        assert "top_k" not in body  # 0: off, not sent
        assert body["seed"] == call_seed(4, body["messages"][0]["content"])
    with pytest.raises(ConfigError, match="labeling.llm_name_or_path .*labeling.llm_endpoint"):
        make_divide(LabelingConfig(extractor="llm", llm_endpoint=llm_server.url), ModelConfig())


def test_make_divide_with_separate_split_and_question_models(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def split(body: dict[str, Any]) -> str:
        return "### Facts:\n- There is a lamp."

    def changeq(body: dict[str, Any]) -> str:
        return "### Modified sentences:\n- Is there a lamp?"

    with ChatServer(split) as split_server, ChatServer(changeq) as changeq_server:
        cfg = LabelingConfig(
            extractor="llm",
            question_builder="llm",
            llm_name_or_path="llama3-split",
            llm_endpoint=split_server.url,
            llm_question_name_or_path="llama3-changeq",
            llm_question_endpoint=changeq_server.url,
            llm_prompt_format="rlaifv_finetuned",
        )
        extractor, builder = make_divide(cfg, ModelConfig())
        claims = extractor.extract("A lamp.", "What is here?")
        assert builder.questions(claims) == ["Is there a lamp? Please answer yes or no."]
    [extract] = split_server.requests
    [rewrite] = changeq_server.requests
    assert (extract["model"], rewrite["model"]) == ("llama3-split", "llama3-changeq")
    assert extract["messages"][0]["content"] == SPLIT + "What is here?\nAnswer: A lamp."
    assert rewrite["messages"][0]["content"] == CHANGEQ + "\n- There is a lamp.\n"
    # the reference's sampling by default
    assert (extract["temperature"], extract["top_p"], extract["top_k"]) == (0.2, 0.9, 50)
    assert extract["max_tokens"] == rewrite["max_tokens"] == 256


def test_labeling_llm_settings_default_to_the_reference_and_are_checked_at_load():
    cfg = LabelingConfig()
    assert (cfg.llm_temperature, cfg.llm_top_p, cfg.llm_top_k) == (0.2, 0.9, 50)
    assert (cfg.llm_max_new_tokens, cfg.llm_max_words, cfg.llm_seed) == (256, 300, 0)
    assert cfg.llm_prompt_format == "instruct"
    assert parse_config("labeling:\n  llm_temperature: 0\n").labeling.llm_temperature == 0.0
    bad = {
        "llm_temperature: -0.1": "labeling.llm_temperature: must be >= 0",
        "llm_temperature: .nan": "labeling.llm_temperature: must be >= 0",
        "llm_top_p: 0": r"labeling.llm_top_p: must be in \(0, 1\]",
        "llm_top_p: 1.5": r"labeling.llm_top_p: must be in \(0, 1\]",
        "llm_top_k: -1": "labeling.llm_top_k: must be >= 0",
        "llm_max_new_tokens: 0": "labeling.llm_max_new_tokens: must be >= 1",
        "llm_max_words: 0": "labeling.llm_max_words: must be >= 1",
        "llm_seed: -3": "labeling.llm_seed: must be >= 0",
        "llm_seed: 1.5": "labeling.llm_seed: expected an integer",
        "llm_prompt_format: chatml": "labeling.llm_prompt_format: 'chatml' is not one of",
        "llm_temprature: 0.2": "unknown config key.*labeling.llm_temprature",
    }
    for line, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            parse_config(f"labeling:\n  {line}\n")


def test_text_generators_loads_a_chat_lm_greedy_unless_told(tmp_path):
    model, tok = chat_lm(["hello world"], hidden=32, layers=1)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    greedy = text_generators(str(tmp_path))(5)  # the POVID injector's call: greedy
    assert isinstance(greedy, TextGenerator) and greedy.budget == 5
    assert (greedy.temperature, greedy.top_p, greedy.top_k) == (0.0, 1.0, 0)
    assert greedy.chat_prompt("hi") == user_turn("hi")  # the template came from disk
    sampled = text_generators(str(tmp_path), temperature=0.2, top_p=0.9, top_k=50, seed=1)(9)
    assert (sampled.temperature, sampled.top_p, sampled.top_k, sampled.seed) == (0.2, 0.9, 50, 1)
