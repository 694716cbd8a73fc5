"""RLAIF-V pair rules: candidate pairs by score, at most k per prompt, then length balancing.

Rules as in the RLAIF-V reference implementation:

0. A response that produced no questions (no claims, no text) never enters pairing, nor one whose
   claim extraction or question rewriting failed; each is counted by reason.
1. For each prompt, every pair of candidates whose scores differ by at least ``min_gap`` is a
   candidate pair, the higher score being chosen; ties and identical texts are dropped.
2. At most ``max_pairs_per_prompt`` pairs are kept per prompt, chosen by a seeded draw.
3. Length balancing: for r in 0, 0.02, ..., 0.98, drop pairs whose rejected answer is longer
   than the chosen one by more than r of its length, ``(len_rej - len_cho) / len_rej > r``, and
   keep the r that minimises ``|mean len_chosen - mean len_rejected| / mean len_rejected``
   (lengths in words).
"""

from __future__ import annotations

import itertools
import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

SWEEP: tuple[float, ...] = tuple(round(0.02 * i, 2) for i in range(50))


@dataclass(frozen=True)
class Candidate:
    """One sampled answer with its feedback score.

    Attributes:
        unpaired: Why the answer takes no part in pairing (``no_claims``, ``empty_response``,
            ``unparsed_extraction``, ``unparsed_question``, ``mismatched_questions``), or
            ``None``.
    """

    prompt_id: str
    sample_idx: int
    response: str
    score: float
    unpaired: str | None = None


@dataclass(frozen=True)
class Pair:
    """A preference pair of two candidates of the same prompt."""

    prompt_id: str
    chosen: Candidate
    rejected: Candidate


@dataclass(frozen=True)
class PairStats:
    """What the pair builder did: rows in and out, skips by reason, the length ratio chosen."""

    prompts_in: int
    candidates_in: int
    pairs_out: int
    skips: dict[str, int] = field(default_factory=dict)
    length_ratio: float | None = None
    replayed_yesno: int = 0
    added_povid: dict[str, int] = field(default_factory=dict)


def n_words(text: str) -> int:
    """Length in words (whitespace-separated), as the length balancing counts it."""
    return len(text.split())


def candidate_pairs(candidates: Sequence[Candidate], min_gap: float = 1.0) -> list[Pair]:
    """All pairs of one prompt's candidates whose scores differ by at least ``min_gap``.

    Identical texts are never paired, whatever their scores. Pairs come in candidate order.
    """
    pairs = []
    for a, b in itertools.combinations(candidates, 2):
        if a.response.strip() == b.response.strip() or abs(a.score - b.score) < min_gap:
            continue
        chosen, rejected = (a, b) if a.score > b.score else (b, a)
        pairs.append(Pair(a.prompt_id, chosen, rejected))
    return pairs


def length_balance(pairs: Sequence[Pair]) -> tuple[list[Pair], float | None]:
    """Apply the length-balancing sweep; returns the kept pairs and the ratio r chosen.

    Ties between ratios go to the smallest r. Empty input returns ``([], None)``.
    """
    if not pairs:
        return [], None
    best: tuple[float, float, list[Pair]] | None = None
    for r in SWEEP:
        kept = [p for p in pairs if _excess(p) <= r]
        if not kept:
            continue
        cho = sum(n_words(p.chosen.response) for p in kept) / len(kept)
        rej = sum(n_words(p.rejected.response) for p in kept) / len(kept)
        gap = abs(cho - rej) / rej if rej else float("inf")
        if best is None or gap < best[0]:
            best = (gap, r, kept)
    if best is None:  # every pair's rejected answer is far longer: keep none
        return [], None
    return best[2], best[1]


def build_pairs(
    candidates: Sequence[Candidate],
    seed: int,
    min_gap: float = 1.0,
    max_pairs_per_prompt: int = 2,
    balance_lengths: bool = True,
) -> tuple[list[Pair], PairStats]:
    """The RLAIF-V pair rules over all prompts.

    Args:
        candidates: Scored candidates of any number of prompts.
        seed: Seed of the per-prompt choice among candidate pairs.
        min_gap: Least score difference of a pair.
        max_pairs_per_prompt: Most pairs kept per prompt.
        balance_lengths: Run the length-balancing sweep.

    Returns:
        The pairs (grouped by prompt in first-seen order) and the statistics, with skip counts
        ``candidates_<reason>`` (candidates that take no part in pairing, by
        :attr:`Candidate.unpaired`), ``fewer_than_2_distinct`` (prompts whose remaining
        candidates are all the same text),
        ``no_score_gap`` (prompts whose distinct candidates all tie) and ``length_balance``
        (pairs dropped by the sweep).
    """
    by_prompt: dict[str, list[Candidate]] = {}
    skips: Counter[str] = Counter()
    for c in candidates:
        group = by_prompt.setdefault(c.prompt_id, [])
        if c.unpaired is None:
            group.append(c)
        else:
            skips[f"candidates_{c.unpaired}"] += 1
    selected: list[Pair] = []
    for prompt_id, group in by_prompt.items():
        if len({c.response.strip() for c in group}) < 2:
            skips["fewer_than_2_distinct"] += 1
            continue
        pairs = candidate_pairs(group, min_gap)
        if not pairs:
            skips["no_score_gap"] += 1
            continue
        if len(pairs) > max_pairs_per_prompt:
            rng = random.Random(f"{seed}:{prompt_id}")
            pairs = rng.sample(pairs, max_pairs_per_prompt)
        selected.extend(pairs)
    ratio = None
    if balance_lengths:
        balanced, ratio = length_balance(selected)
        skips["length_balance"] += len(selected) - len(balanced)
        selected = balanced
    stats = PairStats(
        len(by_prompt), len(candidates), len(selected), {k: v for k, v in skips.items() if v}, ratio
    )
    logger.info("pairs: %s", stats)
    return selected, stats


def candidates_from_rows(rows: Sequence[Mapping[str, Any]]) -> list[Candidate]:
    """Candidates from feedback-table rows (``prompt_id, sample_idx, response, score`` and
    ``unpaired``; a table written before that column pairs every row)."""
    return [
        Candidate(
            str(r["prompt_id"]),
            int(r["sample_idx"]),
            str(r["response"]),
            float(r["score"]),
            r.get("unpaired"),
        )
        for r in rows
    ]


def _excess(pair: Pair) -> float:
    rej = n_words(pair.rejected.response)
    if rej == 0:
        return 0.0
    return (rej - n_words(pair.chosen.response)) / rej
