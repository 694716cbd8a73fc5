"""Candidate generation: n seeded samples per (image, instruction) from the current policy."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, ProcessorMixin

from mmrlaif.config import SamplingConfig
from mmrlaif.io import cell_to_image
from mmrlaif.models.chat import ChatFormat
from mmrlaif.models.seeded import sample_seed, seeded_generate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingStats:
    """Rows in and out, generated tokens and wall time of a sampling run.

    Attributes:
        prompts_in: Prompts sampled.
        samples_out: Sample rows written.
        new_tokens: Generated tokens (end-of-sequence included, padding not).
        seconds: Wall time.
        requests: Endpoint backends: HTTP requests sent, retries included (0 in-process).
        retries: Endpoint backends: requests that were retries of a transient error.
        failures: Endpoint backends: requests that failed for good.
    """

    prompts_in: int
    samples_out: int
    new_tokens: int
    seconds: float
    requests: int = 0
    retries: int = 0
    failures: int = 0

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per second of wall time."""
        return self.new_tokens / self.seconds if self.seconds else 0.0


@torch.no_grad()
def sample_candidates(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    prompts: Sequence[Mapping[str, Any]],
    cfg: SamplingConfig,
    policy: str = "policy",
) -> tuple[list[dict[str, Any]], SamplingStats]:
    """Sample ``cfg.n`` candidates per prompt with identical settings and per-sample seeds.

    Each prompt is encoded once per batch and expanded to ``n`` rows by ``generate``
    (``num_return_sequences``); each row samples from its own stream seeded by
    ``(cfg.seed, prompt_id, sample_idx)``, so a rerun reproduces every sample.

    Args:
        model: The policy.
        processor: Its processor.
        prompts: Rows with ``prompt_id``, ``image`` (HF layout) and ``question``.
        cfg: Number of samples, temperature, budget, batching and seed.
        policy: Name of the policy, recorded on every row.

    Returns:
        The samples table rows (``prompt_id, sample_idx, seed, response, policy``) and stats.

    Raises:
        ImageError: Naming the prompt whose image is missing or corrupt.
    """
    tok = processor.tokenizer
    chat = ChatFormat(processor)
    rows: list[dict[str, Any]] = []
    new_tokens = 0
    start = time.perf_counter()
    n_batches = (len(prompts) + cfg.prompts_per_batch - 1) // cfg.prompts_per_batch
    for b, first in enumerate(range(0, len(prompts), cfg.prompts_per_batch)):
        batch = prompts[first : first + cfg.prompts_per_batch]
        ids = [str(p["prompt_id"]) for p in batch]
        images = [cell_to_image(p["image"], pid) for p, pid in zip(batch, ids, strict=True)]
        enc = chat.encode_prompts([p["question"] for p in batch], images).to(model.device)
        seeds = [sample_seed(cfg.seed, pid, j) for pid in ids for j in range(cfg.n)]
        generated = seeded_generate(
            model,
            tok,
            enc,
            seeds,
            cfg.n,
            cfg.temperature,
            cfg.max_new_tokens,
            chat.stop_token_ids,
        )
        new_tokens += int((generated != tok.pad_token_id).sum())
        texts = [chat.decode(row) for row in generated]
        for row, text in enumerate(texts):
            pid, j = ids[row // cfg.n], row % cfg.n
            rows.append(
                {
                    "prompt_id": pid,
                    "sample_idx": j,
                    "seed": seeds[row],
                    "response": text.strip(),
                    "policy": policy,
                }
            )
        if (b + 1) % 10 == 0 or b + 1 == n_batches:
            logger.info("sampled %d/%d prompt batches", b + 1, n_batches)
    stats = SamplingStats(len(prompts), len(rows), new_tokens, time.perf_counter() - start)
    logger.info(
        "sampling: %d prompts -> %d samples, %.0f tokens/s",
        stats.prompts_in,
        stats.samples_out,
        stats.tokens_per_second,
    )
    return rows, stats
