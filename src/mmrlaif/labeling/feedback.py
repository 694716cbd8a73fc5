"""Divide-and-conquer feedback over a samples table: claims, questions, verdicts, scores.

Each distinct (prompt, question) is answered once, however many of the prompt's candidates
raise it; score(response) = -(number of rejected claims).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmrlaif.io import cell_to_image
from mmrlaif.labeling.claims import ClaimExtractor, QuestionBuilder
from mmrlaif.labeling.labeler import Verdict, YesNoLabeler

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackStats:
    """Rows in and out, claims, distinct questions answered, and counts by reason."""

    samples_in: int
    rows_out: int
    claims: int
    questions_answered: int
    counts: dict[str, int] = field(default_factory=dict)


#: A question builder's counts of a response whose questions failed (``LLMQuestionBuilder``).
QUESTION_FAILURES = ("unparsed_question", "mismatched_questions")


def _failures(part: object, key: str) -> int:
    """An LLM extractor's or question builder's count of unparsable outputs so far."""
    return int(getattr(part, "counts", {}).get(key, 0))


def label_samples(
    samples: Sequence[Mapping[str, Any]],
    prompts: Sequence[Mapping[str, Any]],
    extractor: ClaimExtractor,
    builder: QuestionBuilder,
    labeler: YesNoLabeler,
    reject_threshold: float = 0.5,
) -> tuple[list[dict[str, Any]], FeedbackStats]:
    """Label every sample and score it.

    Args:
        samples: Rows with ``prompt_id``, ``sample_idx``, ``response``.
        prompts: Rows with ``prompt_id`` and ``image`` (the images the samples answer).
        extractor: Claim extractor.
        builder: Question builder.
        labeler: The yes/no labeler.
        reject_threshold: A claim is rejected when the labeler's P(no) / (P(yes) + P(no)) is
            at least this (0.5: P(no) >= P(yes), RLAIF-V's rule).

    Returns:
        Feedback rows (the sample's columns plus ``claims``, ``questions``, ``p_yes``, ``p_no``,
        ``accepted``, ``n_rejected``, ``score`` and ``unpaired``) and statistics; ``counts``
        has ``empty_response`` (samples with no text), ``no_claims``, and the extractor's and
        builder's own counts (``unparsed_extraction``, ``unparsed_question``,
        ``mismatched_questions``). ``unpaired`` names why a response takes no part in pairing
        (``None``: it does): as in the reference, a response that produced no questions never
        enters pairing (its score of 0 would otherwise make an empty or evasive answer the
        best one), and neither does one whose extraction or question rewriting failed
        (``unparsed_*``, or fewer questions than claims: ``mismatched_questions``). The
        questions of a response's claims are asked of the builder in one call, as the
        reference's question rewrite takes a response's claims as one list.

    Raises:
        KeyError: Naming a sample whose ``prompt_id`` has no prompt row.
        ImageError: Naming the prompt whose image is missing or corrupt.
    """
    prompt_by_id = {str(p["prompt_id"]): p for p in prompts}
    counts: Counter[str] = Counter()
    # LLM extractors and builders count their unparsable outputs; report this run's share
    before = [Counter(getattr(part, "counts", {})) for part in (extractor, builder)]
    per_sample: list[tuple[Mapping[str, Any], list, list[str], str | None]] = []
    distinct: dict[tuple[str, str], int] = {}
    # identical responses and claims recur across a prompt's n samples: divide each once
    extracted: dict[tuple[str, str], tuple[list, bool]] = {}
    asked: dict[tuple[str, ...], tuple[list[str], str | None]] = {}
    for s in samples:
        pid = str(s["prompt_id"])
        if pid not in prompt_by_id:
            raise KeyError(
                f"sample {pid}/{s.get('sample_idx')}: prompt_id {pid!r} has no prompt row"
            )
        response = (s.get("response") or "").strip()
        # the extractor sees the item's own question with the answer, as in the reference
        key = (str(prompt_by_id[pid].get("question") or ""), response)
        if key not in extracted:
            failures = _failures(extractor, "unparsed_extraction")
            claims = extractor.extract(response, key[0]) if response else []
            extracted[key] = (claims, _failures(extractor, "unparsed_extraction") > failures)
        claims, extraction_failed = extracted[key]
        texts = tuple(c.text for c in claims)
        if claims and texts not in asked:
            seen = {k: _failures(builder, k) for k in QUESTION_FAILURES}
            rewritten = builder.questions(claims)
            failed = [k for k in QUESTION_FAILURES if _failures(builder, k) > seen[k]]
            asked[texts] = (rewritten, failed[0] if failed else None)
        questions, question_failure = asked[texts] if claims else ([], None)
        if not response:
            unpaired = "empty_response"
        elif extraction_failed:
            unpaired = "unparsed_extraction"
        elif not claims:
            unpaired = "no_claims"
        elif question_failure:
            unpaired = question_failure
        else:
            unpaired = None
        if unpaired in ("empty_response", "no_claims"):
            counts[unpaired] += 1
        for q in questions:
            distinct.setdefault((pid, q), len(distinct))
        per_sample.append((s, claims, questions, unpaired))
    images = {}
    keys = list(distinct)
    for pid, _ in keys:
        if pid not in images:
            images[pid] = cell_to_image(prompt_by_id[pid]["image"], pid)
    verdicts: list[Verdict] = labeler.answer([images[p] for p, _ in keys], [q for _, q in keys])
    rows = []
    n_claims = 0
    for s, claims, questions, unpaired in per_sample:
        pid = str(s["prompt_id"])
        vs = [verdicts[distinct[(pid, q)]] for q in questions]
        accepted = [v.accepted_at(reject_threshold) for v in vs]
        n_rejected = accepted.count(False)
        n_claims += len(claims)
        rows.append(
            dict(s)
            | {
                "claims": [c.text for c in claims],
                "questions": questions,
                "p_yes": [v.p_yes for v in vs],
                "p_no": [v.p_no for v in vs],
                "accepted": accepted,
                "n_rejected": n_rejected,
                "score": float(-n_rejected),
                "unpaired": unpaired,
            }
        )
    for part, seen in zip((extractor, builder), before, strict=True):
        counts += Counter(getattr(part, "counts", {})) - seen
    stats = FeedbackStats(len(samples), len(rows), n_claims, len(keys), dict(counts))
    logger.info("feedback: %s", stats)
    return rows, stats
