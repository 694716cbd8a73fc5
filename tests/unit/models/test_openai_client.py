"""The OpenAI-compatible client and text generator against a loopback ``/v1/chat/completions``."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from mmrlaif.models.openai_client import EndpointError, OpenAIClient, OpenAITextGenerator
from tests.servers import send_json, serve_http

SECRET = "sk-test-0123456789abcdef"


def echo(body: dict[str, Any]) -> str:
    """A deterministic reply derived from the request's user message."""
    return f" {body['messages'][0]['content'][::-1][: body['max_tokens']]}"


class CompletionsServer:
    """A loopback ``POST /v1/chat/completions`` that records each request.

    Args:
        statuses: Statuses to answer the first requests with in turn (200: the completion,
            others: an error body); once they are used up, every request gets 200.
        respond: The completion text of a request body.
    """

    def __init__(self, statuses: Sequence[int] = (), respond: Callable[[dict], str] = echo) -> None:
        self.statuses = list(statuses)
        self.respond = respond
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._serving = serve_http(self._handler())
        self.url = ""

    def __enter__(self) -> CompletionsServer:
        self.url = f"{self._serving.__enter__()}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        self._serving.__exit__(None, None, None)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:  # quiet
                pass

            def _send(self, code: int, payload: dict[str, Any]) -> None:
                send_json(self, code, payload)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    status = server.statuses.pop(0) if server.statuses else 200
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                elif status != 200:
                    self._send(status, {"error": {"message": f"scripted {status}"}})
                else:
                    message = {"role": "assistant", "content": server.respond(body)}
                    choice = {"index": 0, "message": message}
                    self._send(200, {"object": "chat.completion", "choices": [choice]})

        return Handler


@pytest.fixture()
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture()
def serve() -> Iterator[Callable[..., CompletionsServer]]:
    started: list[CompletionsServer] = []

    def start(*args: Any, **kwargs: Any) -> CompletionsServer:
        server = CompletionsServer(*args, **kwargs).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__()


def test_greedy_chat_request_and_text(serve, no_key):
    server = serve()
    generate = OpenAITextGenerator(OpenAIClient(server.url + "/"), "served-llm", budget=5)
    assert generate("Hello world") == " dlrow"
    [req] = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["body"] == {
        "model": "served-llm",
        "messages": [{"role": "user", "content": "Hello world"}],
        "max_tokens": 5,
        "temperature": 0.0,
    }
    assert "Authorization" not in req["headers"]
    assert req["headers"]["Content-Type"] == "application/json"
    stats = generate.client.stats
    assert (stats.requests, stats.retries, stats.failures) == (1, 0, 0)


def test_transient_errors_are_retried_and_counted(serve, no_key, caplog):
    server = serve(statuses=[503, 429])
    client = OpenAIClient(server.url, retries=3, backoff=0.01)
    with caplog.at_level(logging.WARNING, logger="mmrlaif.models.openai_client"):
        assert OpenAITextGenerator(client, "m", 8)("abc") == " cba"
    assert len(server.requests) == 3
    assert all(r["body"] == server.requests[0]["body"] for r in server.requests)
    assert (client.stats.requests, client.stats.retries, client.stats.failures) == (3, 2, 0)
    assert "HTTP 503" in caplog.text and "HTTP 429" in caplog.text


def test_persistent_server_error_names_the_endpoint_and_the_prompt(serve, no_key):
    server = serve(statuses=[500] * 10)
    client = OpenAIClient(server.url, retries=2, backoff=0.01)
    generate = OpenAITextGenerator(client, "m", 8)
    with pytest.raises(EndpointError) as err:
        generate("Statement: There is a cup.\nQuestion:")
    message = str(err.value)
    assert f"{server.url}/chat/completions answered 500" in message
    assert "There is a cup. Question:" in message and "scripted 500" in message
    assert len(server.requests) == 3
    assert (client.stats.requests, client.stats.retries, client.stats.failures) == (3, 2, 1)


def test_client_errors_and_unreadable_answers_are_not_retried(serve, no_key):
    server = serve(statuses=[400])
    client = OpenAIClient(server.url, retries=3, backoff=0.01)
    with pytest.raises(EndpointError, match="answered 400 for a chat completion of 'x'"):
        OpenAITextGenerator(client, "m", 4)("x")
    assert (client.stats.requests, client.stats.retries, client.stats.failures) == (1, 0, 1)
    bad = serve(respond=lambda body: None)  # a 200 without text
    with pytest.raises(EndpointError, match="not a string"):
        OpenAITextGenerator(OpenAIClient(bad.url), "m", 4)("x")


def test_unreachable_endpoint_is_retried_then_named(no_key):
    client = OpenAIClient("http://127.0.0.1:9/v1", retries=1, backoff=0.01, timeout=2)
    with pytest.raises(EndpointError, match="unreachable at http://127.0.0.1:9/v1/chat/compl"):
        OpenAITextGenerator(client, "m", 4)("x")
    assert (client.stats.requests, client.stats.retries, client.stats.failures) == (2, 1, 1)


def test_api_key_is_a_bearer_header_and_never_logged(serve, monkeypatch, caplog):
    monkeypatch.setenv("MMRLAIF_TEST_LLM_KEY", SECRET)
    server = serve(statuses=[503, 200, 500, 500])
    client = OpenAIClient(server.url, api_key_env="MMRLAIF_TEST_LLM_KEY", retries=1, backoff=0.01)
    generate = OpenAITextGenerator(client, "m", 4)
    with caplog.at_level(logging.DEBUG):
        assert generate("key?") == " ?yek"  # 503, then 200
        with pytest.raises(EndpointError) as err:  # 500, 500: fails for good
            generate("key?")
    assert [r["headers"]["Authorization"] for r in server.requests] == [f"Bearer {SECRET}"] * 4
    assert caplog.records, "the retries should have been logged"
    assert SECRET not in caplog.text
    assert SECRET not in str(err.value) and SECRET not in repr(client)
    assert SECRET not in repr(vars(generate))
