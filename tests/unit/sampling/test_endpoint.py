"""The endpoint sampling backend: against the loopback VLM server (same samples as in-process)
and against a scripted chat server (concurrency, retries, failures)."""

from __future__ import annotations

import base64
import io as _io
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from PIL import Image

from mmrlaif import io
from mmrlaif.config import ConfigError, ModelConfig, SamplingConfig, parse_config
from mmrlaif.models.seeded import sample_seed, seeded_generate
from mmrlaif.models.server import VLMChatServer
from mmrlaif.sampling.backends import make_backend
from mmrlaif.sampling.endpoint import EndpointError, OpenAISamplingBackend
from mmrlaif.sampling.sampler import sample_candidates
from tests.servers import send_json, serve_http


@pytest.fixture(autouse=True)
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_endpoint_samples_equal_in_process_samples(small_world, tiny_model):
    """Through the loopback server, each (prompt, sample) is one request with n = 1 and the
    sample's own seed, answered by the same seeded ``generate`` on the prompt alone; the
    in-process backend samples 4 prompts of different lengths per ``generate`` call, left-padded.
    The samples are identical: padding is masked out, and a difference in the last bits of a
    logit could only flip a draw at an exact tie of ``logits / T + Gumbel`` (with 100 samples
    of 32 tokens on the 10 align prompts they were identical too)."""
    model, processor = tiny_model
    prompts = io.read_rows(small_world.prompts("align"))[:6]
    lengths = {len(processor.tokenizer(p["question"])["input_ids"]) for p in prompts[:4]}
    assert len(lengths) > 1, "the in-process batch should need padding"
    cfg = SamplingConfig(n=3, temperature=1.0, max_new_tokens=12, prompts_per_batch=4, seed=5)
    local, local_stats = sample_candidates(model, processor, prompts, cfg, policy="tiny")
    with VLMChatServer(model, processor, model_name="tiny") as server:
        cfg = replace(cfg, backend="openai", endpoint=server.url, max_in_flight=3)
        backend = OpenAISamplingBackend(server.url, "tiny")
        remote, stats = backend.sample(prompts, cfg)
        assert server.requests == 18 and 1 <= server.peak_in_flight <= 3
        per_prompt, pp_stats = backend.sample(prompts, replace(cfg, per_prompt_requests=True))
        again, _ = backend.sample(prompts, replace(cfg, per_prompt_requests=True))
    assert remote == local  # every column, in the same order, policy = the served name
    assert len({r["response"] for r in remote}) > 1
    assert (stats.requests, stats.retries, stats.failures) == (18, 0, 0)
    assert (stats.prompts_in, stats.samples_out) == (6, 18)
    assert stats.new_tokens == local_stats.new_tokens

    # per prompt: one request with n = 3, seeded by (run seed, prompt, 0); choice i is the
    # server's draw from request seed + i (as vLLM V1 seeds its children): reproducible per
    # prompt, not the per-sample samples
    assert pp_stats.requests == 6 and per_prompt == again
    assert [(r["prompt_id"], r["sample_idx"]) for r in per_prompt] == [
        (r["prompt_id"], r["sample_idx"]) for r in local
    ]
    first = prompts[0]
    request_seed = sample_seed(cfg.seed, first["prompt_id"], 0)
    enc = processor(
        text=[f"USER: <image>\n{first['question']} ASSISTANT:"],
        images=[io.cell_to_image(first["image"], first["prompt_id"])],
        return_tensors="pt",
    )
    seeds = [request_seed + i for i in range(3)]
    new = seeded_generate(model, processor.tokenizer, enc, seeds, 3, 1.0, 12)
    expected = [t.strip() for t in processor.tokenizer.batch_decode(new, skip_special_tokens=True)]
    assert [r["response"] for r in per_prompt[:3]] == expected
    assert [r["seed"] for r in per_prompt[:3]] == seeds


def test_server_rejects_bad_sampling_parameters(tiny_model):
    model, processor = tiny_model
    with VLMChatServer(model, processor) as server:
        client = OpenAISamplingBackend(server.url, retries=0).client
        body = chat_body("Describe the image.", n=0)
        with pytest.raises(EndpointError, match="answered 400 .*need n >= 1"):
            client.post("/chat/completions", body, "a bad request")
        greedy = client.post("/chat/completions", chat_body("Hi", n=2, temperature=0.0), "greedy")
    texts = [c["message"]["content"] for c in greedy["choices"]]
    assert len(texts) == 2 and texts[0] == texts[1]
    assert greedy["usage"]["completion_tokens"] > 0


# --------------------------------------------------------------------------------------------
# A scripted chat server: answers "<question> #<seed>/<i>", counts what is in flight
# --------------------------------------------------------------------------------------------


class ScriptedChatServer:
    """A loopback ``POST /v1/chat/completions`` that fails on cue and counts concurrency.

    Args:
        statuses: Per question text, statuses to answer its first requests with (200: answer).
        delay: Seconds each request takes.
        choices: Choices to answer with (``None``: the requested ``n``).
    """

    def __init__(
        self,
        statuses: dict[str, list[int]] | None = None,
        delay: float = 0.0,
        choices: int | None = None,
    ) -> None:
        self.statuses = {k: list(v) for k, v in (statuses or {}).items()}
        self.delay = delay
        self.choices = choices
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._serving = serve_http(self._handler())
        self.url = ""

    def __enter__(self) -> ScriptedChatServer:
        self.url = f"{self._serving.__enter__()}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        self._serving.__exit__(None, None, None)

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        question = body["messages"][0]["content"][1]["text"]
        with self._lock:
            self.bodies.append(body)
            queue = self.statuses.get(question) or []
            status = queue.pop(0) if queue else 200
        if status != 200:
            return status, {"error": {"message": f"scripted {status}"}}
        n = self.choices if self.choices is not None else body["n"]
        texts = [f"{question} #{body['seed']}/{i}" for i in range(n)]
        choices = [{"index": i, "message": {"content": t}} for i, t in enumerate(texts)]
        return 200, {"model": "served", "choices": choices[::-1], "usage": {"completion_tokens": n}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                with server._lock:
                    server.in_flight += 1
                    server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
                try:
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                    time.sleep(server.delay)
                    send_json(self, *server.answer(body))
                finally:
                    with server._lock:
                        server.in_flight -= 1

        return Handler


@pytest.fixture()
def scripted() -> Iterator[Callable[..., ScriptedChatServer]]:
    started: list[ScriptedChatServer] = []

    def start(**kwargs: Any) -> ScriptedChatServer:
        server = ScriptedChatServer(**kwargs).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__()


def png_bytes() -> bytes:
    buf = _io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


def chat_body(question: str, **params: Any) -> dict[str, Any]:
    url = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": question}]
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 4, **params}


def fake_prompts(k: int) -> list[dict[str, Any]]:
    image = {"bytes": png_bytes(), "path": None}
    return [{"prompt_id": f"p{i}", "image": image, "question": f"q{i}"} for i in range(k)]


def openai_cfg(url: str, **kw: Any) -> SamplingConfig:
    return SamplingConfig(
        **{"backend": "openai", "endpoint": url, "n": 3, "max_new_tokens": 7, "seed": 1} | kw
    )


def test_rows_seeds_and_bodies_per_sample_and_per_prompt(scripted):
    server = scripted()
    backend = OpenAISamplingBackend(server.url, "served")
    rows, stats = backend.sample(fake_prompts(2), openai_cfg(server.url, temperature=0.5))
    seed = sample_seed(1, "p1", 2)
    assert rows[5] == {
        "prompt_id": "p1",
        "sample_idx": 2,
        "seed": seed,
        "response": f"q1 #{seed}/0",
        "policy": "served",
    }
    body = next(b for b in server.bodies if b["seed"] == seed)
    assert body["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/png;")
    assert {k: body[k] for k in ("model", "n", "temperature", "max_tokens", "top_p")} == {
        "model": "served",
        "n": 1,
        "temperature": 0.5,
        "max_tokens": 7,
        "top_p": 1.0,
    }
    assert (stats.requests, stats.samples_out, stats.new_tokens) == (6, 6, 6)

    server.bodies.clear()
    unnamed = OpenAISamplingBackend(server.url)  # no model name: the field is not sent
    rows, stats = unnamed.sample(fake_prompts(2), openai_cfg(server.url, per_prompt_requests=True))
    assert stats.requests == 2 and [b["n"] for b in server.bodies] == [3, 3]
    assert all("model" not in b for b in server.bodies)
    seed = sample_seed(1, "p1", 0)
    assert [(r["sample_idx"], r["seed"], r["response"]) for r in rows[3:]] == [
        (i, seed + i, f"q1 #{seed}/{i}") for i in range(3)
    ]  # choices ordered by their index; the seed of choice i is the request's + i


def test_concurrency_is_bounded_by_max_in_flight(scripted):
    server = scripted(delay=0.05)
    backend = OpenAISamplingBackend(server.url, "served")
    rows, stats = backend.sample(fake_prompts(4), openai_cfg(server.url, max_in_flight=3))
    assert len(rows) == 12 and stats.requests == 12
    assert server.peak_in_flight == 3
    # the order of the rows does not depend on the order the answers came back in
    assert [(r["prompt_id"], r["sample_idx"]) for r in rows] == [
        (f"p{i}", j) for i in range(4) for j in range(3)
    ]


def test_transient_errors_are_retried_and_counted(scripted):
    server = scripted(statuses={"q1": [503, 503], "q2": [429]})
    backend = OpenAISamplingBackend(server.url, "served", backoff=0.01)
    rows, stats = backend.sample(fake_prompts(3), openai_cfg(server.url, max_in_flight=2))
    assert len(rows) == 9 and all(
        r["response"].startswith(f"q{r['prompt_id'][1:]} #") for r in rows
    )
    assert (stats.requests, stats.retries, stats.failures) == (12, 3, 0)


def test_a_request_failing_for_good_names_the_prompt(scripted):
    server = scripted(statuses={"q2": [500] * 10})
    backend = OpenAISamplingBackend(server.url, "served", retries=1, backoff=0.01)
    with pytest.raises(EndpointError) as err:
        backend.sample(fake_prompts(6), openai_cfg(server.url, max_in_flight=2))
    message = str(err.value)
    assert "answered 500 for prompt 'p2' sample 0" in message and "scripted 500" in message
    assert backend.stats.failures >= 1 and backend.stats.retries >= 1
    assert "failures so far" in message


def test_an_unreadable_answer_names_the_prompt(scripted):
    server = scripted(choices=2)
    backend = OpenAISamplingBackend(server.url, "served")
    with pytest.raises(EndpointError, match=r"expected 1 text choice\(s\) for prompt 'p0' sample"):
        backend.sample(fake_prompts(1), openai_cfg(server.url, n=1))


def test_missing_image_names_the_prompt(scripted):
    server = scripted()
    prompts = fake_prompts(3)
    prompts[1]["image"] = None
    with pytest.raises(io.ImageError, match="p1: image is missing"):
        OpenAISamplingBackend(server.url).sample(prompts, openai_cfg(server.url))


def test_config_and_make_backend():
    with pytest.raises(ConfigError, match="endpoint is required when backend is 'openai'"):
        SamplingConfig(backend="openai")
    with pytest.raises(ConfigError, match="sampling: endpoint is required"):
        parse_config("sampling:\n  backend: openai\n")
    with pytest.raises(ConfigError, match="max_in_flight must be >= 1"):
        parse_config("sampling:\n  max_in_flight: 0\n")
    cfg = parse_config(
        "sampling:\n  backend: openai\n  endpoint: http://127.0.0.1:8000/v1\n"
        "  endpoint_model: policy\n  max_in_flight: 16\n  per_prompt_requests: true\n"
        "  api_key_env: MY_KEY\n"
    ).sampling
    assert (cfg.max_in_flight, cfg.per_prompt_requests, cfg.api_key_env) == (16, True, "MY_KEY")
    backend = make_backend("/no/such/policy", ModelConfig(), cfg)  # the policy is not loaded
    assert isinstance(backend, OpenAISamplingBackend)
    assert backend.client.base_url == "http://127.0.0.1:8000/v1" and backend.model == "policy"
