"""A small client of an OpenAI-compatible HTTP API (as vLLM serves), and a text generator on it.

:class:`OpenAIClient` POSTs JSON bodies to ``<base_url>/<path>``: connection errors, timeouts
and 429/5xx answers are retried with exponential backoff, other errors fail at once, and every
error names the URL and what was asked. The API key, if any, comes from an environment
variable (never from config) and is only ever sent as a bearer header, never logged.
:class:`OpenAITextGenerator` is the endpoint counterpart of the in-process
``mmrlaif.labeling.llm.TextGenerator``: a callable prompt -> chat reply text.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

#: HTTP statuses worth retrying (rate limit, server errors, overload).
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def call_seed(seed: int, prompt: str) -> int:
    """The 63-bit seed of one sampled call: derived from the configured ``seed`` and the
    prompt text (which holds the item), so a call draws the same output whatever else is
    asked, in whatever order, batch or shard, here and in-process alike."""
    digest = hashlib.sha256(f"{seed}\x1f{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class EndpointError(RuntimeError):
    """A request that failed for good (after its retries), or an answer that cannot be read."""


@dataclass
class RequestStats:
    """Requests sent, retries made, and requests that failed for good."""

    requests: int = 0
    retries: int = 0
    failures: int = 0


class OpenAIClient:
    """POST JSON to an OpenAI-compatible API, with retries and backoff.

    Safe to share between threads (the stats are updated under a lock).

    Args:
        base_url: API root, e.g. ``http://127.0.0.1:8000/v1``.
        api_key_env: Environment variable holding the API key, read once here (unset or empty:
            no ``Authorization`` header).
        retries: Retries per request on transient errors.
        backoff: First retry delay in seconds (doubles each retry).
        timeout: Seconds per request.

    Attributes:
        stats: Requests, retries and failures so far.
    """

    def __init__(
        self,
        base_url: str,
        api_key_env: str = "OPENAI_API_KEY",
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = os.environ.get(api_key_env) or None
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.stats = RequestStats()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIClient({self.base_url!r}, retries={self.retries})"

    def url(self, path: str) -> str:
        """The full URL of ``path`` (e.g. ``/completions``) under the API root."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def post(self, path: str, body: dict[str, Any], what: str) -> dict[str, Any]:
        """POST ``body`` as JSON to ``path`` and return the decoded JSON answer.

        Args:
            path: Route under the API root, e.g. ``/chat/completions``.
            body: The request body.
            what: What is asked, for log and error messages (e.g. the question).

        Raises:
            EndpointError: If the request still fails after its retries (or fails with a
                status that is not retried), or the answer is not JSON; the message names
                the URL and ``what``.
        """
        url = self.url(path)
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        delay = self.backoff
        for attempt in range(self.retries + 1):
            self._count("requests")
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    raw = reply.read()
            except urllib.error.HTTPError as exc:
                if exc.code not in RETRY_STATUS or attempt == self.retries:
                    self._count("failures")
                    detail = exc.read()[:200].decode(errors="replace")
                    raise EndpointError(
                        f"endpoint {url} answered {exc.code} for {what}: {detail}"
                    ) from exc
                reason = f"HTTP {exc.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self.retries:
                    self._count("failures")
                    raise EndpointError(f"endpoint unreachable at {url} for {what}: {exc}") from exc
                reason = type(exc).__name__
            else:
                try:
                    return json.loads(raw)
                except json.JSONDecodeError as exc:
                    self._count("failures")
                    raise EndpointError(
                        f"endpoint {url} answered non-JSON for {what}: {raw[:200]!r}"
                    ) from exc
            self._count("retries")
            logger.warning(
                "%s for %s (attempt %d of %d); retrying in %.2f s",
                reason,
                what,
                attempt + 1,
                self.retries + 1,
                delay,
            )
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)


class OpenAITextGenerator:
    """A chat reply to one user turn by a model behind ``<base_url>/chat/completions``.

    The endpoint counterpart of ``mmrlaif.labeling.llm.TextGenerator``: the same callable
    prompt -> text, with the same token budget and sampling settings. The prompt is sent as
    the one user message; the server renders it with the model's chat template (vLLM refuses a
    model that has none). With ``temperature`` > 0 each request carries ``top_p``, ``top_k``
    (when > 0; vLLM's extension of the API) and a ``seed`` derived from ``seed`` and the
    prompt (vLLM honours it per request); ``temperature`` 0 is greedy and sends neither.

    Args:
        client: The API client (shared clients share their stats).
        model: The model name the server serves.
        budget: Most new tokens (``max_tokens``).
        temperature: Sampling temperature (0: greedy).
        top_p: Nucleus mass (1: off).
        top_k: Top-k cut (0: off, not sent).
        seed: Configured seed; each request's ``seed`` is derived from it and the prompt.
    """

    def __init__(
        self,
        client: OpenAIClient,
        model: str,
        budget: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int = 0,
    ) -> None:
        self.client = client
        self.model = model
        self.budget = budget
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.seed = seed

    def body(self, prompt: str) -> dict[str, Any]:
        """The request body for ``prompt``."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": self.budget,
            "temperature": self.temperature,
        }
        if self.temperature > 0:
            body["top_p"] = self.top_p
            if self.top_k > 0:
                body["top_k"] = self.top_k
            body["seed"] = call_seed(self.seed, prompt)
        return body

    def __call__(self, prompt: str) -> str:
        """The reply to ``prompt``.

        Raises:
            EndpointError: If the request fails for good or the answer holds no text.
        """
        what = f"a chat completion of {_clip(prompt)!r} by {self.model!r}"
        answer = self.client.post("/chat/completions", self.body(prompt), what)
        try:
            text = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise EndpointError(
                f"no choices[0].message.content from {self.client.url('/chat/completions')} "
                f"for {what}"
            ) from exc
        if not isinstance(text, str):
            raise EndpointError(f"choices[0].message.content is not a string for {what}: {text!r}")
        return text


def _clip(text: str, n: int = 80) -> str:
    """``text`` on one line, its last ``n`` characters (where prompts differ) with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= n else "..." + flat[-n:]


def image_data_url(image: Image.Image) -> str:
    """``image`` as a lossless PNG ``data:`` URL."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
