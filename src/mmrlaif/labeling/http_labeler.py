"""A yes/no labeler behind an OpenAI-compatible endpoint (as vLLM serves), read from logprobs.

Each question is one chat-completions request with the image as a ``data:`` URL, asking for
one token with ``logprobs`` and ``top_logprobs``; P(yes) and P(no) are summed over the top
tokens that spell yes/Yes and no/No. Requests run concurrently with a bounded number in
flight; connection errors and 5xx/429 answers are retried with backoff. The API key, if any,
comes from the environment, never from config.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from mmrlaif.labeling.labeler import NO_WORDS, YES_WORDS, LabelerError, Verdict
from mmrlaif.models.openai_client import (
    RETRY_STATUS,
    EndpointError,
    OpenAIClient,
    RequestStats,
    image_data_url,
)

__all__ = [
    "RETRY_STATUS",
    "OpenAIYesNoLabeler",
    "RequestStats",
    "verdict_from_top_logprobs",
]


class OpenAIYesNoLabeler:
    """Labeler that asks an OpenAI-compatible server.

    Args:
        base_url: API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: Model name the server serves.
        api_key_env: Environment variable holding the API key (unset: no auth header).
        top_logprobs: How many top tokens to ask for.
        max_in_flight: Most concurrent requests.
        retries: Retries per request on transient errors.
        backoff: First retry delay in seconds (doubles each retry).
        timeout: Seconds per request.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        top_logprobs: int = 20,
        max_in_flight: int = 8,
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float = 60.0,
    ) -> None:
        self.client = OpenAIClient(base_url, api_key_env, retries, backoff, timeout)
        self.url = self.client.url("/chat/completions")
        self.model = model
        self.top_logprobs = top_logprobs
        self.max_in_flight = max_in_flight

    @property
    def stats(self) -> RequestStats:
        """Requests, retries and failures so far (the client's)."""
        return self.client.stats

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[Verdict]:
        """Verdicts of each (image, question), in order.

        Raises:
            LabelerError: If a request still fails after its retries, naming the question.
        """
        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images but {len(questions)} questions")
        urls: dict[int, str] = {}
        for image in images:
            if id(image) not in urls:
                urls[id(image)] = image_data_url(image)
        with ThreadPoolExecutor(max_workers=self.max_in_flight) as pool:
            futures = [
                pool.submit(self._ask, urls[id(img)], q)
                for img, q in zip(images, questions, strict=True)
            ]
            return [f.result() for f in futures]

    def _ask(self, image_url: str, question: str) -> Verdict:
        body = {
            "model": self.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": image_url}},
                        {"type": "text", "text": question},
                    ],
                }
            ],
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
        }
        response = self._post(body, question)
        try:
            top = response["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LabelerError(f"no top_logprobs in the answer to {question!r}") from exc
        return verdict_from_top_logprobs(top)

    def _post(self, body: dict, question: str) -> dict:
        try:
            return self.client.post("/chat/completions", body, repr(question))
        except EndpointError as exc:
            raise LabelerError(f"labeler {exc}") from exc


def verdict_from_top_logprobs(top: Sequence[dict]) -> Verdict:
    """P(yes) and P(no) summed over the top tokens that spell yes/Yes and no/No."""
    p_yes = sum(math.exp(t["logprob"]) for t in top if t["token"].strip() in YES_WORDS)
    p_no = sum(math.exp(t["logprob"]) for t in top if t["token"].strip() in NO_WORDS)
    return Verdict(p_yes, p_no)
