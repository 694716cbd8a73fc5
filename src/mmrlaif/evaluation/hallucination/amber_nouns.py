"""The nouns of a response, found as AMBER's ``inference.py`` finds them (metrics:
:mod:`.amber_metrics`).

AMBER finds nouns with NLTK (tokeniser, POS tagger, WordNet lemmatiser):
:func:`reference_noun_extractor` makes those calls; where the tagger is not installed,
:class:`AmberNounExtractor` approximates the noun finder (see its docstring), which
:class:`~.nlp.ReferenceNlp` records, and the figures are marked approximate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from mmrlaif.evaluation.hallucination.nlp import ReferenceNlp

#: Words that AMBER's POS tagger rarely tags as nouns in descriptions; the approximate extractor
#: counts them only after a determiner or number ("a can", "two watches": plurals always count).
_NOUN_AFTER_DETERMINER_ONLY = frozenset(
    {"can", "hot", "watch", "drink", "support", "switch", "sound"}
)
_DETERMINERS = frozenset(
    {
        "a", "an", "the", "this", "that", "these", "those", "one", "two", "three", "four", "five",
        "six", "several", "some", "many", "few", "his", "her", "its", "their", "my", "our", "your",
        "no", "another", "each", "every", "any",
    }
)  # fmt: skip
# WordNet's noun detachment rules (morphy) and a few exceptions.
_NOUN_RULES = (
    ("s", ""),
    ("ses", "s"),
    ("ves", "f"),
    ("xes", "x"),
    ("zes", "z"),
    ("ches", "ch"),
    ("shes", "sh"),
    ("men", "man"),
    ("ies", "y"),
)
_IRREGULAR_NOUNS = {
    "children": "child",
    "geese": "goose",
    "mice": "mouse",
    "feet": "foot",
    "teeth": "tooth",
    "knives": "knife",
    "leaves": "leaf",
    "shelves": "shelf",
}
_TOKEN_RE = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")


class AmberNounExtractor:
    """An approximation of AMBER's noun finder without NLTK.

    AMBER keeps the tokens that NLTK tags as nouns, lemmatised by WordNet, and then the ones in
    its vocabulary. Here: tokens are runs of letters (hyphens inside kept, case kept, as AMBER
    does not lower-case); a token is lemmatised by WordNet's noun rules (``dogs`` -> ``dog``,
    ``glasses`` -> ``glass``, ``men`` -> ``man``, a few irregular plurals) using the vocabulary
    as the dictionary; vocabulary words are taken as nouns, except a handful that are mostly verbs
    or adjectives in descriptions ("can", "hot", "watch"...), which count only after a
    determiner or number.

    Args:
        vocabulary: AMBER's object words (:attr:`AmberVocabulary.words`).
    """

    def __init__(self, vocabulary: Collection[str]) -> None:
        self.vocabulary = frozenset(vocabulary)

    def lemma(self, word: str) -> str:
        """The noun lemma of ``word`` as far as the vocabulary knows, else ``word``."""
        if word in _IRREGULAR_NOUNS:
            return _IRREGULAR_NOUNS[word]
        if word in self.vocabulary:
            return word
        for suffix, replacement in _NOUN_RULES:
            if word.endswith(suffix):
                candidate = word[: -len(suffix)] + replacement
                if candidate in self.vocabulary:
                    return candidate
        return word

    def __call__(self, text: str) -> list[str]:
        """Vocabulary nouns of ``text``, lemmatised, one per occurrence, in order."""
        tokens = _TOKEN_RE.findall(text)
        nouns = []
        for i, token in enumerate(tokens):
            lemma = self.lemma(token)
            if lemma not in self.vocabulary:
                continue
            if (
                lemma in _NOUN_AFTER_DETERMINER_ONLY
                and token == lemma
                and (i == 0 or tokens[i - 1].lower() not in _DETERMINERS)
            ):
                continue
            nouns.append(lemma)
        return nouns


def reference_noun_extractor(
    nlp: ReferenceNlp, vocabulary: Collection[str]
) -> Callable[[str], list[str]]:
    """AMBER's ``extract_nouns``: NLTK tokens tagged ``NN*``, WordNet-lemmatised.

    Where NLTK's tagger is not installed, :class:`AmberNounExtractor` over ``vocabulary`` is used
    instead (and ``nlp`` records it).
    """
    fallback = AmberNounExtractor(vocabulary)

    def extract(text: str) -> list[str]:
        tagged = nlp.pos_tag(nlp.word_tokenize(text))
        if tagged is None:
            return fallback(text)
        return [nlp.lemmatize(word) for word, pos in tagged if pos.startswith("NN")]

    return extract
