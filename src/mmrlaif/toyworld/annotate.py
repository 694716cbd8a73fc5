"""Text of the toy world: instructions, the noisy caption annotator and yes/no questions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmrlaif.toyworld.vocab import object_kind, object_names, partner_of

#: Instructions asking for a description (the RLAIF-V / POVID prompts of the world).
DESCRIBE_INSTRUCTIONS: tuple[str, ...] = (
    "Describe the image.",
    "What objects are in this picture?",
    "Tell me what you see in the image.",
)

CAPTION_TEMPLATES: tuple[str, ...] = (
    "There is {}.",
    "The image shows {}.",
    "I can see {}.",
    "This picture contains {}.",
)

QUESTION_TEMPLATE = "Is there a {} in the image?"


def surface_name(name: str, rng: np.random.Generator, synonym_rate: float) -> str:
    """The canonical name, or with probability ``synonym_rate`` one of its synonyms."""
    synonyms = object_kind(name).synonyms
    if synonyms and rng.random() < synonym_rate:
        return str(synonyms[int(rng.integers(len(synonyms)))])
    return name


def annotate_caption(
    objects: Sequence[str],
    rng: np.random.Generator,
    hallucination_rate: float,
    synonym_rate: float,
) -> tuple[str, list[str]]:
    """Write a reference caption the way a noisy human-like annotator would.

    All present objects are listed in random order; after a present object whose co-occurring
    partner is absent, the partner is named too with probability ``hallucination_rate``.

    Returns:
        The caption and the canonical names of the objects it hallucinated.
    """
    present = set(objects)
    order = [objects[i] for i in rng.permutation(len(objects))]
    named: list[str] = []
    hallucinated: list[str] = []
    for name in order:
        named.append(name)
        partner = partner_of(name)
        if (
            partner is not None
            and partner not in present
            and partner not in named
            and rng.random() < hallucination_rate
        ):
            named.append(partner)
            hallucinated.append(partner)
    phrases = [f"a {surface_name(n, rng, synonym_rate)}" for n in named]
    template = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))]
    return template.format(join_list(phrases)), hallucinated


def join_list(phrases: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if not phrases:
        raise ValueError("cannot caption an empty object list")
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def presence_question(name: str, rng: np.random.Generator, synonym_rate: float) -> str:
    """A yes/no presence question about an object (without the answer-format suffix)."""
    return QUESTION_TEMPLATE.format(surface_name(name, rng, synonym_rate))


def negative_objects(
    objects: Sequence[str],
    category: str,
    rng: np.random.Generator,
    frequency: dict[str, float],
    cooccurrence: dict[str, dict[str, float]],
) -> list[str]:
    """Absent objects ranked for a POPE-style negative-sampling category.

    Args:
        objects: Objects present in the image.
        category: ``random`` (shuffled), ``popular`` (most frequent first) or ``adversarial``
            (most often co-occurring with the present objects first; ties broken at random).
        rng: Random source for the shuffle and tie-breaking.
        frequency: Share of training images holding each object.
        cooccurrence: ``cooccurrence[a][b]`` = P(b present | a present) on training images.
    """
    absent = [n for n in object_names() if n not in set(objects)]
    tiebreak = {n: float(rng.random()) for n in absent}
    if category == "random":
        return sorted(absent, key=lambda n: tiebreak[n])
    if category == "popular":
        return sorted(absent, key=lambda n: (-frequency.get(n, 0.0), tiebreak[n]))
    if category == "adversarial":

        def score(n: str) -> float:
            return max(cooccurrence.get(p, {}).get(n, 0.0) for p in objects)

        return sorted(absent, key=lambda n: (-score(n), tiebreak[n]))
    raise ValueError(f"unknown POPE category {category!r} (random, popular, adversarial)")
