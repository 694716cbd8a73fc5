"""Per-(prompt, sample) seeded sampling inside ``model.generate``.

``generate`` draws every row of a batch from one global random stream, so a sample depends on
what else is in the batch. Here each row owns a ``torch.Generator`` seeded from
``(seed, prompt_id, sample_idx)``: at each step the processor adds Gumbel noise drawn from the
row's own generator to the temperature-scaled logits and keeps only the arg-max (the Gumbel-max
trick: the arg-max of ``logits / T + Gumbel`` is a draw from ``softmax(logits / T)``). The
remaining sampling step of ``generate`` then has a single choice, so the global stream plays no
part and a rerun, another batch size or another shard gives the same samples.
:func:`seeded_generate` is the one ``generate`` call that both the in-process backend and the
loopback chat server (``mmrlaif.models.server``) sample with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import torch
from transformers import LogitsProcessor, PreTrainedModel, PreTrainedTokenizerBase


def sample_seed(seed: int, prompt_id: str, sample_idx: int) -> int:
    """A 63-bit seed derived from the run seed, the prompt and the sample index."""
    digest = hashlib.sha256(f"{seed}\x1f{prompt_id}\x1f{sample_idx}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class SeededGumbelSampler(LogitsProcessor):
    """Logits processor that turns greedy selection into per-row seeded sampling.

    Args:
        seeds: One seed per row of the generation batch (prompts expanded by the number of
            return sequences, in ``generate``'s order).
        temperature: Sampling temperature (> 0).
    """

    def __init__(self, seeds: Sequence[int], temperature: float) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.generators):
            raise ValueError(f"{scores.shape[0]} rows but {len(self.generators)} seeds")
        logits = scores.float() / self.temperature
        uniform = torch.stack(
            [torch.rand(scores.shape[1], generator=g) for g in self.generators]
        ).to(scores.device)
        exponential = -torch.log(uniform.clamp_min(1e-20))
        gumbel = -torch.log(exponential.clamp_min(1e-20))
        choice = (logits + gumbel).argmax(dim=-1)
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(scores.shape[0]), choice] = 0.0
        return out


def seeded_generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    enc: Mapping[str, torch.Tensor],
    seeds: Sequence[int],
    num_return_sequences: int,
    temperature: float,
    max_new_tokens: int,
    stop_token_ids: Sequence[int] | None = None,
) -> torch.Tensor:
    """Sample ``num_return_sequences`` continuations per encoded prompt, one seed per row.

    Args:
        model: The VLM.
        tokenizer: Its tokenizer (pad and end-of-sequence tokens).
        enc: The processor's output for the prompts (left-padded when several).
        seeds: One seed per output row: prompts expanded by ``num_return_sequences``, in
            ``generate``'s order (prompt-major).
        num_return_sequences: Rows per prompt.
        temperature: Sampling temperature (> 0).
        max_new_tokens: Generation budget.
        stop_token_ids: Tokens that end a row (the family's end of turn and EOS; default:
            the tokenizer's EOS).

    Returns:
        The generated token ids without the prompt, one row per seed, padded with the pad
        token after a row's end of sequence.
    """
    out = model.generate(
        **enc,
        do_sample=True,
        num_return_sequences=num_return_sequences,
        max_new_tokens=max_new_tokens,
        logits_processor=[SeededGumbelSampler(seeds, temperature)],
        temperature=1.0,
        top_k=None,
        top_p=None,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=list(stop_token_ids or [tokenizer.eos_token_id]),
    )
    return out[:, enc["input_ids"].shape[1] :]
