"""The toy world: a small synthetic world in which hallucination can be produced and measured."""

from mmrlaif.toyworld.generate import WorldPaths, build_world, make_scenes
from mmrlaif.toyworld.vocab import OBJECTS, PAIRS, object_names, partner_of, toy_lexicon

__all__ = [
    "OBJECTS",
    "PAIRS",
    "WorldPaths",
    "build_world",
    "make_scenes",
    "object_names",
    "partner_of",
    "toy_lexicon",
]
