"""A small OpenAI-compatible chat-completions server around a local VLM.

Enough of the API that vLLM serves for the engine's needs: ``POST /v1/chat/completions`` with
a user message holding an image (``image_url`` with a ``data:`` URL) and text, ``max_tokens``
(default 16), ``temperature`` (default 1; 0 = greedy), ``n`` choices, ``seed``,
``logprobs`` / ``top_logprobs`` on the first generated token, ``usage`` in the answer, and
``GET /v1/models``. It serves the tiny toy-world model in tests and local runs; on a cluster
the same clients talk to vLLM. Binds to loopback by default.

Sampling (``temperature`` > 0) uses the project's own seeded sampler
(:func:`mmrlaif.models.seeded.seeded_generate`), so a request answers exactly what the
in-process sampling backend draws for the same seed. Choice ``i`` is drawn from its own stream
seeded with ``seed + i`` (choice 0 from ``seed`` itself), the convention vLLM's engine (V1)
follows when it splits a seeded ``n`` > 1 request into ``n`` children: choice ``i`` of a
request equals choice 0 of the same request with ``n`` = 1 and ``seed + i``. Without a
``seed`` a random one is drawn per request (as the OpenAI API does). vLLM's sampler is not
this one, so only this server reproduces the in-process samples bit for bit.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from mmrlaif.models.chat import ChatFormat
from mmrlaif.models.seeded import seeded_generate

logger = logging.getLogger(__name__)


class RequestError(ValueError):
    """A request the server cannot serve (answered with HTTP 400)."""


def parse_message(body: dict[str, Any]) -> tuple[Image.Image, str]:
    """The image and the question text of a one-turn user request.

    Raises:
        RequestError: If there is no user message, no image, or no text.
    """
    messages = body.get("messages") or []
    users = [m for m in messages if m.get("role") == "user"]
    if len(users) != 1 or not isinstance(users[0].get("content"), list):
        raise RequestError("expected exactly one user message with a content list")
    image, texts = None, []
    for part in users[0]["content"]:
        if part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if not url.startswith("data:") or "," not in url:
                raise RequestError("only data: image URLs are served")
            try:
                image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
                image = image.convert("RGB")
            except Exception as exc:
                raise RequestError(f"image cannot be decoded: {exc}") from exc
        elif part.get("type") == "text":
            texts.append(part.get("text", ""))
    if image is None or not texts:
        raise RequestError("the user message needs an image_url part and a text part")
    return image, " ".join(texts)


def parse_sampling(body: dict[str, Any]) -> tuple[int, float, int, int | None]:
    """``n``, ``temperature``, ``max_tokens`` and ``seed`` of a request, with the defaults.

    Raises:
        RequestError: If one is not a number or out of range.
    """
    try:
        n = int(_get(body, "n", 1))
        temperature = float(_get(body, "temperature", 1.0))
        max_tokens = int(_get(body, "max_tokens", 16))
        seed = None if body.get("seed") is None else int(body["seed"])
    except (TypeError, ValueError) as exc:
        raise RequestError(f"bad sampling parameter: {exc}") from exc
    if n < 1 or max_tokens < 1 or not temperature >= 0:
        raise RequestError(
            f"need n >= 1, max_tokens >= 1, temperature >= 0; got {n}, {max_tokens}, {temperature}"
        )
    return n, temperature, max_tokens, seed


def _get(body: dict[str, Any], key: str, default: Any) -> Any:
    """``body[key]``, or ``default`` when it is absent or null."""
    value = body.get(key)
    return default if value is None else value


class VLMChatServer:
    """Serve ``model`` on ``host:port`` in a background thread.

    Args:
        model: The VLM.
        processor: Its processor.
        model_name: The name reported by ``/v1/models`` and echoed in responses.
        host: Address to bind (loopback by default).
        port: Port (0 picks a free one; see :attr:`url`).

    Attributes:
        requests: Completion requests served (answered or failed in the model).
        in_flight: Chat-completions requests being handled now.
        peak_in_flight: Most chat-completions requests handled at once so far.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        processor: ProcessorMixin,
        model_name: str = "tiny-vlm",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.model = model
        self.processor = processor
        self.chat = ChatFormat(processor)
        self.model_name = model_name
        self.requests = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the API (``http://host:port/v1``)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> VLMChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @torch.no_grad()
    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer one chat-completions request body.

        Raises:
            RequestError: If the body is not a request this server can serve.
        """
        image, question = parse_message(body)
        n, temperature, max_tokens, seed = parse_sampling(body)
        top = int(body.get("top_logprobs") or 0) if body.get("logprobs") else 0
        tok = self.processor.tokenizer
        enc = self.chat.encode_prompts([question], [image]).to(self.model.device)
        with self._lock:  # one forward at a time on the shared model
            self.requests += 1
            first = None
            if body.get("logprobs"):
                first = self.model(**enc).logits[0, -1].float().log_softmax(-1)
            if temperature > 0:
                seed = secrets.randbits(63) if seed is None else seed
                seeds = [seed + i for i in range(n)]
                new = seeded_generate(
                    self.model,
                    tok,
                    enc,
                    seeds,
                    n,
                    temperature,
                    max_tokens,
                    self.chat.stop_token_ids,
                )
            else:
                out = self.model.generate(
                    **enc,
                    max_new_tokens=max_tokens,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=self.chat.stop_token_ids,
                )
                new = out[:, enc["input_ids"].shape[1] :].repeat(n, 1)
        choices = [self._choice(i, row, first, top) for i, row in enumerate(new)]
        completion = int((new != tok.pad_token_id).sum())
        prompt = int(enc["input_ids"].shape[1])
        return {
            "object": "chat.completion",
            "model": self.model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    def _choice(
        self, index: int, new: torch.Tensor, first: torch.Tensor | None, top: int
    ) -> dict[str, Any]:
        """One choice of the answer: generated ids ``new``, first-token log-probs ``first``."""
        tok = self.processor.tokenizer
        text = self.chat.decode(new)
        stopped = bool(torch.isin(new, torch.tensor(self.chat.stop_token_ids)).any())
        choice: dict[str, Any] = {
            "index": index,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop" if stopped else "length",
        }
        if first is not None:
            values, ids = first.topk(max(top, 1))
            chosen = int(new[0]) if len(new) else int(ids[0])
            choice["logprobs"] = {
                "content": [
                    {
                        "token": tok.decode([chosen]),
                        "logprob": float(first[chosen]),
                        "top_logprobs": [
                            {"token": tok.decode([int(i)]), "logprob": float(v)}
                            for v, i in zip(values[:top], ids[:top], strict=True)
                            if math.isfinite(float(v))
                        ],
                    }
                ]
            }
        return choice

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:
                logger.debug("%s " + fmt, self.address_string(), *args)

            def _send(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": server.model_name}]})
                elif self.path.rstrip("/") == "/health":  # readiness, as vLLM answers it
                    self._send(200, {})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                with server._count_lock:
                    server.in_flight += 1
                    server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
                try:
                    length = int(self.headers.get("Content-Length", 0))
                    status, reply = (
                        200,
                        server.complete(json.loads(self.rfile.read(length) or b"{}")),
                    )
                except (RequestError, json.JSONDecodeError) as exc:
                    status, reply = 400, {"error": {"message": str(exc)}}
                except Exception as exc:  # answer, rather than drop the connection
                    logger.exception("chat completion failed")
                    status, reply = 500, {"error": {"message": f"{type(exc).__name__}: {exc}"}}
                finally:
                    # before the reply: once it is sent, the client may already send the next
                    with server._count_lock:
                        server.in_flight -= 1
                self._send(status, reply)

        return Handler
