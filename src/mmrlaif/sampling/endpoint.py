"""Sampling through an OpenAI-compatible chat-completions endpoint (as vLLM serves).

Each request is one user message with the image as a ``data:`` URL and the question, and asks
for ``n`` choices at ``temperature`` with at most ``max_tokens`` new tokens and a ``seed``.
Requests run concurrently with at most ``max_in_flight`` in flight; connection errors,
timeouts and 429/5xx answers are retried with exponential backoff
(:class:`mmrlaif.models.openai_client.OpenAIClient`). The rows have the same columns and order
as the in-process backend's (``prompt_id, sample_idx, seed, response, policy``).

Seeds, and what reproduces:

- Per sample (the default): one request per (prompt, sample) with ``n`` = 1 and
  ``seed = sample_seed(run seed, prompt_id, sample_idx)``, the very seed the in-process
  backend gives that sample. A sample depends on nothing else (not on batching, sharding or
  concurrency), and the loopback :class:`mmrlaif.models.server.VLMChatServer` answers exactly
  the in-process backend's sample. On vLLM a seeded request reproduces as far as its kernels
  do: the batch it is scheduled in, the engine version and the hardware can move the logits'
  last bits, and with them an occasional near-tie draw.
- Per prompt (``per_prompt_requests``): one request per prompt with ``n`` choices and
  ``seed = sample_seed(run seed, prompt_id, 0)``. Fewer requests, and vLLM shares the prompt's
  prefill among the choices. The server derives the choices' seeds: vLLM (V1) and the
  loopback server draw choice ``i`` from ``seed + i``, which is what the ``seed`` column
  records. Samples are then reproducible per prompt only (the request as a whole, on the same
  server), not per (prompt, sample) by the project's seed contract, and they are not the
  per-sample mode's samples.

The ``policy`` column records the model the server says answered (its ``model`` field), else
the requested model name, else the endpoint URL. A failed request (after its retries) stops
the run with an :class:`EndpointError` naming the prompt: the samples table is all or nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from mmrlaif.config import SamplingConfig
from mmrlaif.io import cell_to_image
from mmrlaif.models.openai_client import EndpointError, OpenAIClient, RequestStats, image_data_url
from mmrlaif.models.seeded import sample_seed
from mmrlaif.sampling.sampler import SamplingStats

logger = logging.getLogger(__name__)

__all__ = ["EndpointError", "OpenAISamplingBackend"]


@dataclass(frozen=True)
class _Request:
    """One chat-completions request: ``n`` samples of a prompt from ``first`` on."""

    prompt_id: str
    first: int
    n: int
    seed: int

    @property
    def what(self) -> str:
        last = self.first + self.n - 1
        samples = f"sample {self.first}" if self.n == 1 else f"samples {self.first}-{last}"
        return f"prompt {self.prompt_id!r} {samples}"


class OpenAISamplingBackend:
    """Sampling backend on an OpenAI-compatible chat-completions API.

    Safe to share between threads only for one :meth:`sample` call at a time (the run's
    request statistics are taken as the difference of the client's counters).

    Args:
        base_url: API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: The served model name (``None``: not sent; the server's default answers).
        api_key_env: Environment variable holding the API key (unset: no auth header).
        retries: Retries per request on transient errors.
        backoff: First retry delay in seconds (doubles each retry).
        timeout: Seconds per request (a long sample on a busy server takes a while).
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float = 300.0,
    ) -> None:
        self.client = OpenAIClient(base_url, api_key_env, retries, backoff, timeout)
        self.model = model

    def __repr__(self) -> str:
        return f"OpenAISamplingBackend({self.client.base_url!r}, model={self.model!r})"

    @property
    def stats(self) -> RequestStats:
        """Requests, retries and failures so far, over all runs (the client's)."""
        return self.client.stats

    def sample(
        self, prompts: Sequence[Mapping[str, Any]], cfg: SamplingConfig
    ) -> tuple[list[dict[str, Any]], SamplingStats]:
        """``cfg.n`` seeded candidates per prompt, as rows of the samples table.

        Args:
            prompts: Rows with ``prompt_id``, ``image`` (HF layout) and ``question``.
            cfg: Number of samples, temperature, budget, seed, ``max_in_flight`` and
                ``per_prompt_requests``.

        Returns:
            The rows (prompt order, then ``sample_idx``) and the run's statistics, with the
            requests, retries and failures of this run.

        Raises:
            ImageError: Naming the prompt whose image is missing or corrupt.
            EndpointError: Naming the prompt (and sample) whose request failed for good, or
                whose answer cannot be read.
        """
        start = time.perf_counter()
        before = replace(self.client.stats)
        answers = self._run(prompts, cfg)
        rows: list[dict[str, Any]] = []
        new_tokens = 0
        for request, texts, tokens, policy in answers:
            new_tokens += tokens
            for k, text in enumerate(texts):
                rows.append(
                    {
                        "prompt_id": request.prompt_id,
                        "sample_idx": request.first + k,
                        "seed": request.seed + k,
                        "response": text.strip(),
                        "policy": policy,
                    }
                )
        now = self.client.stats
        stats = SamplingStats(
            prompts_in=len(prompts),
            samples_out=len(rows),
            new_tokens=new_tokens,
            seconds=time.perf_counter() - start,
            requests=now.requests - before.requests,
            retries=now.retries - before.retries,
            failures=now.failures - before.failures,
        )
        logger.info(
            "sampling via %s: %d prompts -> %d samples, %.0f tokens/s, "
            "%d requests (%d retries, %d failures)",
            self.client.base_url,
            stats.prompts_in,
            stats.samples_out,
            stats.tokens_per_second,
            stats.requests,
            stats.retries,
            stats.failures,
        )
        return rows, stats

    def _requests(self, prompt_id: str, cfg: SamplingConfig) -> list[_Request]:
        if cfg.per_prompt_requests:
            return [_Request(prompt_id, 0, cfg.n, sample_seed(cfg.seed, prompt_id, 0))]
        return [
            _Request(prompt_id, j, 1, sample_seed(cfg.seed, prompt_id, j)) for j in range(cfg.n)
        ]

    def _run(
        self, prompts: Sequence[Mapping[str, Any]], cfg: SamplingConfig
    ) -> list[tuple[_Request, list[str], int, str]]:
        """Send every request, at most ``cfg.max_in_flight`` at once, and gather the answers.

        Images are encoded as prompts are reached and submission waits while twice
        ``max_in_flight`` requests are pending, so memory stays bounded on large tables. The
        first failure stops submission, cancels what has not started and is raised.
        """
        window = threading.BoundedSemaphore(2 * cfg.max_in_flight)
        failed = threading.Event()

        def settle(future: Future) -> None:
            window.release()
            if not future.cancelled() and future.exception() is not None:
                failed.set()

        submitted: list[tuple[_Request, Future]] = []
        pool = ThreadPoolExecutor(max_workers=cfg.max_in_flight, thread_name_prefix="sample")
        stopped = True  # until every request is submitted: cancel what has not started
        try:
            for prompt in prompts:
                if failed.is_set():
                    break
                pid = str(prompt["prompt_id"])
                url = image_data_url(cell_to_image(prompt["image"], pid))
                for request in self._requests(pid, cfg):
                    window.acquire()
                    if failed.is_set():
                        window.release()
                        break
                    future = pool.submit(self._ask, url, str(prompt["question"]), request, cfg)
                    future.add_done_callback(settle)
                    submitted.append((request, future))
            stopped = failed.is_set()
        finally:
            pool.shutdown(wait=True, cancel_futures=stopped)
        errors = [
            f.exception() for _, f in submitted if not f.cancelled() and f.exception() is not None
        ]
        if errors:
            stats = self.client.stats
            raise EndpointError(
                f"sampling stopped: {errors[0]} ({len(errors)} request(s) failed; "
                f"{stats.requests} requests, {stats.retries} retries, "
                f"{stats.failures} failures so far)"
            ) from errors[0]
        return [(request, *future.result()) for request, future in submitted]

    def _ask(
        self, image_url: str, question: str, request: _Request, cfg: SamplingConfig
    ) -> tuple[list[str], int, str]:
        """The texts of one request's choices (by index), its generated tokens, the model."""
        body: dict[str, Any] = {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": image_url}},
                        {"type": "text", "text": question},
                    ],
                }
            ],
            "n": request.n,
            "temperature": cfg.temperature,
            "top_p": 1.0,
            "max_tokens": cfg.max_new_tokens,
            "seed": request.seed,
        }
        if self.model:
            body["model"] = self.model
        answer = self.client.post("/chat/completions", body, request.what)
        try:
            choices = sorted(answer["choices"], key=lambda c: int(c.get("index", 0)))
            texts = [c["message"]["content"] for c in choices]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EndpointError(
                f"no choices[].message.content from {self.client.url('/chat/completions')} "
                f"for {request.what}"
            ) from exc
        if len(texts) != request.n or not all(isinstance(t, str) for t in texts):
            raise EndpointError(
                f"expected {request.n} text choice(s) for {request.what}, got {texts!r:.200}"
            )
        usage = answer.get("usage") or {}
        tokens = usage.get("completion_tokens") if isinstance(usage, Mapping) else None
        policy = answer.get("model") or self.model or self.client.base_url
        return texts, int(tokens) if isinstance(tokens, int) else 0, str(policy)
