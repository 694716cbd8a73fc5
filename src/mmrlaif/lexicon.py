"""Object-mention extraction driven by a synonym lexicon, in the style of CHAIR.

CHAIR (Rohrbach et al., 2018, "Object Hallucination in Image Captioning") decides which objects a
caption mentions by matching its words against a list of synonyms for each object category, with
multi-word names matched first and a list of phrases that contain an object word without naming
the object ("hot dog" is not a dog). :class:`Lexicon` implements that matching for an arbitrary
vocabulary.

Tokenisation (:func:`tokenize`) is deliberately simple:

* text is lower-cased and typographic apostrophes (``’``) become ``'``;
* a word is a run of ``[a-z0-9]``, optionally with apostrophe suffixes (``don't``); every other
  character separates words, so punctuation is ignored and hyphenated words split into their
  parts (``hot-dog`` -> ``hot dog``, ``t-shirt`` -> ``t shirt``);
* a possessive ``'s`` is dropped (``dog's`` -> ``dog``; ``dogs'`` is already ``dogs``).

Names in the lexicon go through the same tokenisation, so ``"T-Shirt"`` and ``"t shirt"`` are the
same name.

Plural forms are generated for the last word of every name and exclusion by regular English
rules: ``+es`` after ``s``, ``x``, ``z``, ``ch`` or ``sh``; consonant + ``y`` -> ``ies``; ``+s``
otherwise. ``f``/``fe`` -> ``ves`` is not applied automatically (``roof``, ``giraffe``); give such
plurals, and any other irregular ones, in ``irregular_plurals`` (``{"knife": "knives"}``). An
irregular plural is added alongside the regular one, not instead of it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")
_ES_SUFFIXES = ("s", "x", "z", "ch", "sh")
_VOWELS = frozenset("aeiou")

# Value stored in the phrase table for exclusion phrases.
_EXCLUDED = None


def tokenize(text: str) -> list[str]:
    """Split text into lower-case words as described in the module docstring.

    Args:
        text: Any text.

    Returns:
        The words, in order.
    """
    words = _WORD_RE.findall(text.lower().replace("\u2019", "'"))
    return [w.removesuffix("'s") for w in words]


def regular_plural(word: str) -> str:
    """Return the regular English plural of a single word.

    Args:
        word: A lower-case word.

    Returns:
        ``word`` + ``es`` after s/x/z/ch/sh, ``...ies`` for consonant + y, else ``word`` + ``s``.
    """
    if word.endswith(_ES_SUFFIXES):
        return word + "es"
    if len(word) > 1 and word.endswith("y") and word[-2] not in _VOWELS:
        return word[:-1] + "ies"
    return word + "s"


@dataclass(frozen=True)
class Mention:
    """One object mention found in a text.

    Attributes:
        canonical: Canonical object name, e.g. ``"cup"``.
        surface: The matched words as tokenised (lower-cased, joined by single spaces), e.g.
            ``"coffee cups"``.
        start: Word index of the first matched word in the tokenised text.
        end: Word index one past the last matched word.
    """

    canonical: str
    surface: str
    start: int
    end: int


class UnknownObjectError(KeyError):
    """Raised when a name is not a canonical object or synonym in a :class:`Lexicon`."""

    def __init__(self, name: str, message: str | None = None) -> None:
        self.name = name
        self.message = message or f"unknown object {name!r}: not a name or synonym in the lexicon"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class Lexicon:
    """A vocabulary of objects with synonyms, used to find object mentions in text.

    Args:
        synonyms: Canonical object name -> surface names (single or multi-word). The canonical
            name is always a surface name of itself.
        exclusions: Phrases that contain a surface name but do not mention that object
            (``"hot dog"``, ``"teddy bear"``). They are matched as whole phrases, plurals too, and
            their words produce no mention.
        irregular_plurals: Single word -> its plural (``{"mouse": "mice"}``), applied to the last
            word of any name or exclusion, in addition to the regular plural.

    Raises:
        ValueError: If a canonical name, surface name, exclusion or irregular-plural entry is
            empty (has no words); if an irregular-plural entry is not a single word; if a surface
            name (or a generated plural form of one) maps to two different canonicals; or if an
            exclusion is also a surface name.
    """

    def __init__(
        self,
        synonyms: Mapping[str, Sequence[str]],
        exclusions: Sequence[str] = (),
        irregular_plurals: Mapping[str, str] | None = None,
    ) -> None:
        self._irregular = self._check_irregular(irregular_plurals or {})
        # Explicit (singular) surface forms first, so they take precedence over generated plurals.
        explicit: dict[tuple[str, ...], str] = {}
        for canonical, names in synonyms.items():
            if isinstance(names, str):
                raise ValueError(
                    f"synonyms for {canonical!r} must be a sequence of names, not a string"
                )
            if not tokenize(canonical):
                raise ValueError(f"empty canonical object name {canonical!r}")
            for name in (canonical, *names):
                key = self._key(name, f"synonym of {canonical!r}")
                other = explicit.get(key)
                if other is not None and other != canonical:
                    raise ValueError(
                        f"surface name {' '.join(key)!r} maps to two canonicals: "
                        f"{other!r} and {canonical!r}"
                    )
                explicit[key] = canonical

        table: dict[tuple[str, ...], str | None] = dict(explicit)
        generated: dict[tuple[str, ...], str] = {}
        for key, canonical in explicit.items():
            for plural in self._plural_keys(key):
                if plural in explicit:
                    continue  # an explicit name wins over a generated plural
                other = generated.get(plural)
                if other is not None and other != canonical:
                    raise ValueError(
                        f"plural form {' '.join(plural)!r} maps to two canonicals: "
                        f"{other!r} and {canonical!r}"
                    )
                generated[plural] = canonical
                table[plural] = canonical

        self._exclusions: set[tuple[str, ...]] = set()
        for phrase in exclusions:
            key = self._key(phrase, "exclusion")
            for form in (key, *self._plural_keys(key)):
                if form in table and table[form] is not _EXCLUDED:
                    raise ValueError(
                        f"exclusion {phrase!r} (form {' '.join(form)!r}) is also a name of "
                        f"object {table[form]!r}"
                    )
                table[form] = _EXCLUDED
                self._exclusions.add(form)

        self._table = table
        self._max_len = max((len(k) for k in table), default=0)
        self._objects = tuple(sorted(synonyms))

    @staticmethod
    def _key(name: str, what: str) -> tuple[str, ...]:
        key = tuple(tokenize(name))
        if not key:
            raise ValueError(f"empty {what}: {name!r}")
        return key

    @staticmethod
    def _check_irregular(irregular: Mapping[str, str]) -> dict[str, str]:
        checked: dict[str, str] = {}
        for singular, plural in irregular.items():
            s_words, p_words = tokenize(singular), tokenize(plural)
            if len(s_words) != 1 or len(p_words) != 1:
                raise ValueError(
                    f"irregular plural {singular!r} -> {plural!r} must map one word to one word"
                )
            checked[s_words[0]] = p_words[0]
        return checked

    def _plural_keys(self, key: tuple[str, ...]) -> list[tuple[str, ...]]:
        last = key[-1]
        plurals = [regular_plural(last)]
        if last in self._irregular and self._irregular[last] not in plurals:
            plurals.append(self._irregular[last])
        return [(*key[:-1], p) for p in plurals if p != last]

    @property
    def objects(self) -> tuple[str, ...]:
        """The canonical object names, sorted."""
        return self._objects

    @property
    def exclusions(self) -> frozenset[str]:
        """All exclusion phrase forms (singular and plural), tokenised and space-joined."""
        return frozenset(" ".join(k) for k in self._exclusions)

    def canonical(self, name: str) -> str:
        """Map a canonical or surface name (any case, singular or plural) to its canonical.

        Args:
            name: A name as it could appear in text, e.g. ``"Coffee Cups"``.

        Returns:
            The canonical object name.

        Raises:
            UnknownObjectError: If ``name`` is not a name in the lexicon (exclusions included).
        """
        found = self._table.get(tuple(tokenize(name)))
        if found is None:
            raise UnknownObjectError(name)
        return found

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return self._table.get(tuple(tokenize(name))) is not None

    def __len__(self) -> int:
        return len(self._objects)

    def __repr__(self) -> str:
        return f"Lexicon({len(self._objects)} objects, {len(self._exclusions)} exclusion forms)"

    def extract(self, text: str) -> list[Mention]:
        """Find all object mentions in a text.

        Words are scanned left to right; at each position the longest name or exclusion that
        starts there wins, so ``"tennis ball"`` is one mention, and ``"hot dog"`` (an exclusion)
        consumes both words. Matching is on whole words, case-insensitive, ignoring punctuation.

        Args:
            text: Free text, e.g. a model response.

        Returns:
            The mentions in text order (an object mentioned twice appears twice).
        """
        words = tokenize(text)
        mentions: list[Mention] = []
        i = 0
        while i < len(words):
            for length in range(min(self._max_len, len(words) - i), 0, -1):
                key = tuple(words[i : i + length])
                if key in self._table:
                    canonical = self._table[key]
                    if canonical is not _EXCLUDED:
                        mentions.append(Mention(canonical, " ".join(key), i, i + length))
                    i += length
                    break
            else:
                i += 1
        return mentions

    def objects_in(self, text: str) -> list[str]:
        """Return the distinct canonical objects mentioned in a text, in order of first mention.

        Args:
            text: Free text.

        Returns:
            Unique canonical names.
        """
        return list(dict.fromkeys(m.canonical for m in self.extract(text)))
