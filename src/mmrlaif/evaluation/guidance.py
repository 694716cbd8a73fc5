"""Self-feedback guidance (RLAIF-V inference-time scaling): the length-normalised DPO reward
``r(y) = beta / |y| * sum_t log(pi(y_t | ...) / pi_ref(y_t | ...))`` and best-of-N by it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from mmrlaif.config import SamplingConfig
from mmrlaif.io.tables import cell_to_image
from mmrlaif.sampling.sampler import sample_candidates
from mmrlaif.training.data import IGNORE_INDEX, Example, SupervisedCollator


@torch.no_grad()
def completion_logprobs(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    images: Sequence[Image.Image],
    questions: Sequence[str],
    responses: Sequence[str],
    batch_size: int = 32,
    max_length: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probabilities of each response (end of turn included) and its token count,
    on the ids DPO trains on (:func:`mmrlaif.training.data.encode_answers`).

    Returns:
        ``(sum_logps, n_tokens)``, float64 and int64 tensors of length ``len(responses)``.
    """
    collate = SupervisedCollator(processor, max_length)
    sums, counts = [], []
    for start in range(0, len(responses), batch_size):
        batch = [
            Example(str(i), images[i], questions[i], responses[i])
            for i in range(start, min(start + batch_size, len(responses)))
        ]
        enc = {k: v.to(model.device) for k, v in collate(batch).items()}
        labels = enc.pop("labels")
        logits = model(**enc).logits[:, :-1].double()
        target = labels[:, 1:]
        mask = target != IGNORE_INDEX
        logps = logits.log_softmax(-1).gather(-1, target.clamp_min(0)[..., None])[..., 0]
        sums.append((logps * mask).sum(-1).cpu())
        counts.append(mask.sum(-1).cpu())
    return torch.cat(sums), torch.cat(counts)


def guidance_rewards(
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    processor: ProcessorMixin,
    images: Sequence[Image.Image],
    questions: Sequence[str],
    responses: Sequence[str],
    beta: float = 0.1,
) -> list[float]:
    """The length-normalised DPO reward of each response under ``policy`` against ``reference``."""
    pi, n = completion_logprobs(policy, processor, images, questions, responses)
    ref, _ = completion_logprobs(reference, processor, images, questions, responses)
    return (beta * (pi - ref) / n.clamp_min(1)).tolist()


def best_of_n(prompt_ids: Sequence[str], rewards: Sequence[float]) -> dict[str, int]:
    """Index of the highest-reward candidate of each prompt (the first one on ties)."""
    best: dict[str, int] = {}
    for i, (pid, r) in enumerate(zip(prompt_ids, rewards, strict=True)):
        if pid not in best or r > rewards[best[pid]]:
            best[pid] = i
    return best


def best_of_n_answers(
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    processor: ProcessorMixin,
    prompts: Sequence[Mapping[str, Any]],
    sampling: SamplingConfig,
    beta: float = 0.1,
) -> list[dict[str, Any]]:
    """Self-feedback guidance end to end: ``sampling.n`` seeded samples per prompt from
    ``policy``, each scored by :func:`guidance_rewards` against ``reference``, the best kept.

    Args:
        policy: The aligned policy (it samples, and is the reward's numerator).
        reference: The policy it was aligned from (the reward's denominator).
        processor: The policy's processor (the reference shares its tokenizer).
        prompts: Rows with ``prompt_id``, ``image`` and ``question``.
        sampling: Candidates per prompt, temperature, budget and seed.
        beta: The DPO beta of the reward.

    Returns:
        One row per prompt: ``prompt_id``, ``question``, ``response`` (the best candidate),
        ``sample_idx``, ``reward``, and every candidate's ``rewards`` in sample order.
    """

    samples, _ = sample_candidates(policy, processor, prompts, sampling)
    by_id = {str(p["prompt_id"]): p for p in prompts}
    images = {pid: cell_to_image(p["image"], pid) for pid, p in by_id.items()}
    ids = [s["prompt_id"] for s in samples]
    rewards = guidance_rewards(
        policy,
        reference,
        processor,
        [images[pid] for pid in ids],
        [by_id[pid]["question"] for pid in ids],
        [s["response"] for s in samples],
        beta,
    )
    rows = []
    for pid, i in best_of_n(ids, rewards).items():
        rows.append(
            {
                "prompt_id": pid,
                "question": by_id[pid]["question"],
                "response": samples[i]["response"],
                "sample_idx": samples[i]["sample_idx"],
                "reward": rewards[i],
                "rewards": [r for p, r in zip(ids, rewards, strict=True) if p == pid],
            }
        )
    return rows
