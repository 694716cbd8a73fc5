"""The toy world's vocabulary: objects, how they look, what they are called, what goes together."""

from __future__ import annotations

from dataclasses import dataclass

from mmrlaif.evaluation.lexicon import Lexicon


@dataclass(frozen=True)
class ObjectKind:
    """One object of the world.

    Attributes:
        name: Canonical name (the lexicon's key).
        shape: Drawing primitive (see :mod:`mmrlaif.toyworld.draw`).
        colour: Base RGB colour; several objects share a colour, so shape must be seen.
        synonyms: Other names the annotator may use (multi-word names included).
    """

    name: str
    shape: str
    colour: tuple[int, int, int]
    synonyms: tuple[str, ...] = ()


RED = (200, 45, 45)
GREY = (125, 125, 135)
BROWN = (140, 90, 45)
YELLOW = (225, 195, 40)
BLUE = (45, 85, 200)
GREEN = (45, 155, 65)

OBJECTS: tuple[ObjectKind, ...] = (
    ObjectKind("cup", "circle", RED, ("mug", "coffee cup")),
    ObjectKind("saucer", "ring", RED, ("plate",)),
    ObjectKind("fork", "cross", GREY, ()),
    ObjectKind("knife", "bar", GREY, ("table knife",)),
    ObjectKind("dog", "square", BROWN, ("puppy",)),
    ObjectKind("ball", "circle", YELLOW, ("tennis ball",)),
    ObjectKind("book", "slab", BLUE, ("notebook",)),
    ObjectKind("lamp", "triangle", YELLOW, ("desk lamp",)),
    ObjectKind("tree", "triangle", GREEN, ("pine tree",)),
    ObjectKind("car", "diamond", BLUE, ("toy car",)),
)

#: Co-occurring pairs: each member usually brings the other (the world's language prior).
PAIRS: tuple[tuple[str, str], ...] = (("cup", "saucer"), ("fork", "knife"), ("dog", "ball"))

#: Phrases that contain an object's name without naming the object.
EXCLUSIONS: tuple[str, ...] = ("hot dog", "car park", "book shelf")


def object_names() -> tuple[str, ...]:
    """Canonical names, in vocabulary order."""
    return tuple(o.name for o in OBJECTS)


def object_kind(name: str) -> ObjectKind:
    """Look an object up by canonical name.

    Raises:
        KeyError: Naming the object when it is not in the vocabulary.
    """
    for kind in OBJECTS:
        if kind.name == name:
            return kind
    raise KeyError(f"object {name!r} is not in the toy-world vocabulary")


def partner_of(name: str) -> str | None:
    """The co-occurring partner of an object, or ``None``."""
    for a, b in PAIRS:
        if name == a:
            return b
        if name == b:
            return a
    return None


def toy_lexicon() -> Lexicon:
    """The synonym lexicon of the toy world (used by CHAIR-style metrics and claim extraction)."""
    return Lexicon(
        {o.name: (o.name, *o.synonyms) for o in OBJECTS},
        exclusions=EXCLUSIONS,
        irregular_plurals={"knife": "knives"},
    )
