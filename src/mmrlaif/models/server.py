"""A small OpenAI-compatible chat-completions server around a local VLM.

Enough of the API that vLLM serves for the engine's needs: ``POST /v1/chat/completions`` with
a user message holding an image (``image_url`` with a ``data:`` URL) and text, ``max_tokens``,
``temperature`` (0 = greedy), ``logprobs`` / ``top_logprobs`` on the first generated token,
and ``GET /v1/models``. It serves the tiny toy-world model in tests and local runs; on a
cluster the same client talks to vLLM. Binds to loopback by default.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from mmrlaif.models.chat import format_prompt

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


class VLMChatServer:
    """Serve ``model`` on ``host:port`` in a background thread.

    Args:
        model: The VLM.
        processor: Its processor.
        model_name: The name reported by ``/v1/models`` and echoed in responses.
        host: Address to bind (loopback by default).
        port: Port (0 picks a free one; see :attr:`url`).
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
        self.model_name = model_name
        self.requests = 0
        self._lock = threading.Lock()
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
        """Answer one chat-completions request body."""
        image, question = parse_message(body)
        max_tokens = int(body.get("max_tokens") or 16)
        top = int(body.get("top_logprobs") or 0) if body.get("logprobs") else 0
        tok = self.processor.tokenizer
        enc = self.processor(text=[format_prompt(question)], images=[image], return_tensors="pt")
        enc = enc.to(self.model.device)
        with self._lock:  # one forward at a time on the shared model
            self.requests += 1
            first = self.model(**enc).logits[0, -1].float().log_softmax(-1)
            out = self.model.generate(
                **enc,
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
        new = out[0, enc["input_ids"].shape[1] :]
        text = tok.decode(new, skip_special_tokens=True).strip()
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }
        if body.get("logprobs"):
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
        return {"object": "chat.completion", "model": self.model_name, "choices": [choice]}

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
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                try:
                    length = int(self.headers.get("Content-Length", 0))
                    body = json.loads(self.rfile.read(length) or b"{}")
                    self._send(200, server.complete(body))
                except (RequestError, json.JSONDecodeError) as exc:
                    self._send(400, {"error": {"message": str(exc)}})

        return Handler
