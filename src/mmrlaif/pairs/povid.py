"""POVID rejected-answer sources: hallucination injection into the truth, and the model's own
answer on a diffusion-noised image (built online at training time, as the reference does, or
offline by generation). In all, chosen = the ground-truth answer."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from transformers import PreTrainedModel, ProcessorMixin

from mmrlaif.io import cell_to_image
from mmrlaif.lexicon import Lexicon
from mmrlaif.models.generate import generate_answers
from mmrlaif.models.seeded import sample_seed
from mmrlaif.pairs.noise import DEFAULT_STEP, add_diffusion_noise
from mmrlaif.pairs.table import REFERENCE_NOISE, NoiseSpec, online_noise_row, pair_row

logger = logging.getLogger(__name__)


class CooccurrenceInjector:
    """Insert a plausible absent object next to the object it usually appears with.

    The injected object is the absent one most often seen with an object the answer mentions
    (co-occurrence measured on training data), the analogue of POVID's GPT-4V rewrite that
    inserts co-occurring objects. The phrase ``and a <object>`` goes right after that mention.

    Args:
        lexicon: Object lexicon (to find mentions and canonical names).
        cooccurrence: ``cooccurrence[a][b]`` = P(b present | a present).
    """

    def __init__(self, lexicon: Lexicon, cooccurrence: Mapping[str, Mapping[str, float]]):
        self.lexicon = lexicon
        self.cooccurrence = cooccurrence

    def inject(self, answer: str, present: Sequence[str], rng: np.random.Generator) -> str | None:
        """The answer with one hallucinated object inserted, or ``None`` if none fits.

        Args:
            answer: The ground-truth answer.
            present: Objects truly in the image (never injected).
            rng: Breaks ties between equally co-occurring candidates.
        """
        mentions = self.lexicon.extract(answer)
        truth = {self.lexicon.canonical(o) for o in present}
        best: tuple[float, float, str, str] | None = None
        for m in mentions:
            for obj, p in self.cooccurrence.get(m.canonical, {}).items():
                if obj in truth or p <= 0:
                    continue
                key = (p, float(rng.random()), obj, m.surface)
                if best is None or key[:2] > best[:2]:
                    best = key
        if best is None:
            return None
        _, _, obj, surface = best
        pattern = r"\b" + r"\s+".join(map(re.escape, surface.split())) + r"\b"
        match = re.search(pattern, answer, flags=re.IGNORECASE)
        if match is None:
            return None
        return f"{answer[: match.end()]} and a {obj}{answer[match.end() :]}"


def text_injection_rows(
    prompts: Sequence[Mapping[str, Any]], injector: CooccurrenceInjector | LLMInjector, seed: int
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """POVID text pairs: chosen = ``answer``, rejected = it with an injected hallucination.

    Returns:
        Pair rows (source ``povid_text``) and skips by reason (``no_answer``,
        ``nothing_to_inject``).
    """
    rng = np.random.default_rng(seed)
    rows, skips = [], Counter()
    for p in prompts:
        answer = (p.get("answer") or "").strip()
        if not answer:
            skips["no_answer"] += 1
            continue
        rejected = injector.inject(answer, p.get("objects") or [], rng)  # type: ignore[arg-type]
        if rejected is None:
            skips["nothing_to_inject"] += 1
            continue
        rows.append(pair_row(p, answer, rejected, "povid_text"))
    return rows, dict(skips)


def online_noise_rows(
    prompts: Sequence[Mapping[str, Any]], spec: NoiseSpec = REFERENCE_NOISE
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """POVID image-distortion pairs built online: chosen = ``answer``; the rejected answer is
    made at training time (:mod:`mmrlaif.training.povid`) as ``spec`` says, the table holds a
    placeholder naming it.

    Returns:
        Pair rows (source ``povid_noise``, :func:`mmrlaif.pairs.table.online_noise_row`) and
        skips by reason (``no_answer``).
    """
    rows, skips = [], Counter()
    for p in prompts:
        answer = (p.get("answer") or "").strip()
        if answer:
            rows.append(online_noise_row(p, answer, spec))
        else:
            skips["no_answer"] += 1
    return rows, dict(skips)


def noise_rows(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    prompts: Sequence[Mapping[str, Any]],
    seed: int,
    step: int = DEFAULT_STEP,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    clamp: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """POVID image-distortion pairs built offline: rejected = the policy's greedy answer on the
    noised image.

    The noise of each prompt is drawn from ``(seed, prompt_id)``; ``clamp`` as
    :func:`mmrlaif.pairs.noise.add_diffusion_noise`.

    Returns:
        Pair rows (source ``povid_noise``) and skips by reason (``no_answer``,
        ``same_as_truth``, ``empty_rejected``).
    """
    skips: Counter[str] = Counter()
    usable = []
    for p in prompts:
        if (p.get("answer") or "").strip():
            usable.append(p)
        else:
            skips["no_answer"] += 1
    noisy = [
        add_diffusion_noise(
            cell_to_image(p["image"], str(p["prompt_id"])),
            sample_seed(seed, str(p["prompt_id"]), 0),
            step,
            clamp=clamp,
        )
        for p in usable
    ]
    answers = generate_answers(
        model, processor, noisy, [p["question"] for p in usable], max_new_tokens, batch_size
    )
    rows = []
    for p, rejected in zip(usable, answers, strict=True):
        truth = p["answer"].strip()
        if not rejected.strip():
            skips["empty_rejected"] += 1
        elif rejected.strip() == truth:
            skips["same_as_truth"] += 1
        else:
            rows.append(pair_row(p, truth, rejected, "povid_noise"))
    logger.info("povid noise pairs: %d (skipped %s)", len(rows), dict(skips))
    return rows, dict(skips)


INJECT_PROMPT = (
    "Rewrite the description of an image so that it contains plausible hallucinations: add "
    "objects that often appear with the ones mentioned, or change attributes or relations, "
    "keeping the style. Output only the rewritten description.\n"
    "Description: {answer}\nRewritten:"
)
#: Token budget of a rewrite beyond :data:`INJECT_TOKENS_PER_WORD` per word of the answer.
INJECT_MIN_TOKENS = 32
#: Budget tokens per word of the answer: a subword tokenizer spends about 1.3-1.5 tokens on an
#: English word; 4 leaves room for the whole answer and as much again of insertions.
INJECT_TOKENS_PER_WORD = 4

_LABEL = re.compile(r"^\s*rewritten(?: description)?\s*:\s*", flags=re.IGNORECASE)


def inject_budget(answer: str) -> int:
    """New-token budget of the rewrite of ``answer``: never shorter than the answer itself."""
    return INJECT_MIN_TOKENS + INJECT_TOKENS_PER_WORD * len(answer.split())


class LLMInjector:
    """Hallucination injection by an instruct LLM (POVID's GPT-4V rewrite, with an open model).

    The whole rewritten answer is kept (every line of it; a leading ``Rewritten:`` label that
    echoes the prompt is dropped), generated with a budget derived from the answer's length
    (:func:`inject_budget`), so the rejected answer is not cut shorter than the chosen one.

    Args:
        generators: Budget -> (prompt -> completion): the factory of
            :func:`mmrlaif.labeling.llm.text_generators` over a model loaded here or an
            endpoint; one generator per budget is made and kept.

    Attributes:
        counts: ``unchanged_injection`` when the LLM returns the answer unchanged or nothing.
    """

    def __init__(self, generators: Callable[[int], Callable[[str], str]]) -> None:
        self.generators = generators
        self._by_budget: dict[int, Callable[[str], str]] = {}
        self.counts: Counter[str] = Counter()

    def generator(self, budget: int) -> Callable[[str], str]:
        """The generator of ``budget`` new tokens (made once)."""
        if budget not in self._by_budget:
            self._by_budget[budget] = self.generators(budget)
        return self._by_budget[budget]

    def inject(self, answer: str, present: Sequence[str], rng: np.random.Generator) -> str | None:
        """The rewritten answer, or ``None`` (counted) if the LLM did not change it.

        ``present`` and ``rng`` are unused (the interface of :class:`CooccurrenceInjector`):
        the generator's draws are seeded by its prompt.
        """
        generate = self.generator(inject_budget(answer))
        text = _LABEL.sub("", generate(INJECT_PROMPT.format(answer=answer))).strip()
        if not text or text == answer.strip():
            self.counts["unchanged_injection"] += 1
            return None
        return text
