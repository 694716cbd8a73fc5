"""The toy world's vocabulary: objects, how they look, what they are called, what goes together."""

from __future__ import annotations

from dataclasses import dataclass

from mmrlaif.lexicon import Lexicon


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
ORANGE = (235, 130, 30)
GREY = (125, 125, 135)
BLACK = (35, 35, 40)
BROWN = (140, 90, 45)
YELLOW = (225, 195, 40)
BLUE = (45, 85, 200)
GREEN = (45, 155, 65)

# Partners have colours of their own; a few unrelated objects share one, so shape matters.
OBJECTS: tuple[ObjectKind, ...] = (
    ObjectKind("cup", "circle", RED, ("mug", "coffee cup")),
    ObjectKind("saucer", "ring", ORANGE, ("plate",)),
    ObjectKind("fork", "cross", GREY, ()),
    ObjectKind("knife", "bar", BLACK, ("table knife",)),
    ObjectKind("dog", "square", BROWN, ("puppy",)),
    ObjectKind("ball", "circle", YELLOW, ("tennis ball",)),
    ObjectKind("book", "slab", BLUE, ("notebook",)),
    ObjectKind("lamp", "triangle", YELLOW, ("desk lamp",)),
    ObjectKind("tree", "triangle", GREEN, ("pine tree",)),
    ObjectKind("car", "diamond", BLUE, ("toy car",)),
)

#: The "shared" palette: each partner takes its pair's first colour, so only shape tells a cup
#: from a saucer (a harder world for the checker).
SHARED_COLOURS: dict[str, tuple[int, int, int]] = {"saucer": RED, "knife": GREY, "ball": BROWN}

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


def object_colour(name: str, palette: str = "distinct") -> tuple[int, int, int]:
    """Base colour of an object under a palette (``distinct`` or ``shared``)."""
    if palette == "shared":
        return SHARED_COLOURS.get(name, object_kind(name).colour)
    if palette != "distinct":
        raise ValueError(f"unknown palette {palette!r} (distinct, shared)")
    return object_kind(name).colour


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
