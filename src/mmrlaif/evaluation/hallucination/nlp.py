"""NLTK, Pattern and spaCy as the benchmarks' reference scripts call them, with marked fallbacks.

The reference scripts tokenise, lemmatise and tag with NLTK and compare words with spaCy:

* CHAIR (Rohrbach, ``utils/chair.py``): ``nltk.word_tokenize`` and Pattern's ``singularize``;
* Object HalBench (RLAIF-V ``eval/eval_gpt_obj_halbench.py``): ``nltk.word_tokenize`` and
  ``WordNetLemmatizer().lemmatize``;
* AMBER (``inference.py``): ``nltk.word_tokenize``, ``nltk.pos_tag``, ``WordNetLemmatizer`` and
  spaCy ``en_core_web_lg`` similarity.

:class:`ReferenceNlp` makes exactly those calls. NLTK finds its data on its own search path
(``NLTK_DATA``, ``<venv>/nltk_data``, ``/usr/local/share/nltk_data``...): ``make install`` puts
``punkt_tab`` and WordNet 3.0 into ``.venv/nltk_data`` (:mod:`.nltk_data`), the images install all
three resources at build time. Pattern's ``singularize`` is TextBlob's copy of Pattern's English
inflection module (Pattern itself does not install on Python 3).

When a resource is missing, a fallback is used and recorded: :meth:`ReferenceNlp.approximations`
names what was replaced by what, and the benchmark marks its figures approximate. Nothing falls
back silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Any

logger = logging.getLogger(__name__)

#: NLTK resources the reference scripts need: name -> path on NLTK's search path.
NLTK_RESOURCES: dict[str, str] = {
    "punkt_tab": "tokenizers/punkt_tab/english/",
    "wordnet": "corpora/wordnet",
    "averaged_perceptron_tagger_eng": "taggers/averaged_perceptron_tagger_eng/",
}

#: What each fallback does, for reports.
FALLBACKS: dict[str, str] = {
    "punkt_tab": "sentences split by an untrained Punkt tokenizer (no abbreviation list)",
    "wordnet": "words are not lemmatised",
    "averaged_perceptron_tagger_eng": "nouns found without POS tags",
    "spacy": "no word-similarity matching",
}

#: AMBER's spaCy model.
DEFAULT_SPACY_MODEL = "en_core_web_lg"


def nltk_resource_found(name: str) -> bool:
    """Whether NLTK finds resource ``name`` (a key of :data:`NLTK_RESOURCES`) on its path."""
    # lazy: optional (the benchmarks extra): a missing one is a recorded fallback
    import nltk

    try:
        nltk.data.find(NLTK_RESOURCES[name])
    except LookupError:
        return False
    return True


class ReferenceNlp:
    """The reference scripts' NLP calls, with each missing resource's fallback recorded.

    Args:
        spacy_model: spaCy model for AMBER's similarity test (``None``: never load spaCy, and
            the similarity step is recorded as skipped when it is asked for).
        missing: NLTK resources to treat as missing even where installed (the fallback
            figures on purpose, e.g. to measure how far they are from the reference).
    """

    def __init__(
        self, spacy_model: str | None = DEFAULT_SPACY_MODEL, missing: Iterable[str] = ()
    ) -> None:
        self.spacy_model = spacy_model
        self.missing = frozenset(missing)
        unknown = sorted(self.missing - set(NLTK_RESOURCES))
        if unknown:
            raise ValueError(f"unknown NLTK resource(s) {unknown}; one of {list(NLTK_RESOURCES)}")
        self._used_fallbacks: dict[str, str] = {}

    def _fallback(self, name: str, instead: str | None = None) -> None:
        key = name if instead is None else f"{name}: {instead}"
        if key not in self._used_fallbacks:
            detail = instead or FALLBACKS[name]
            if name == "spacy":
                detail = f"spaCy model {self.spacy_model!r} not installed: {detail}"
            else:
                detail = f"NLTK resource {name!r} not found: {detail}"
            logger.warning("benchmark figures are approximate: %s", detail)
            self._used_fallbacks[key] = detail

    def approximations(self) -> list[str]:
        """The fallbacks used so far, one sentence each (empty: the reference's own calls)."""
        return list(self._used_fallbacks.values())

    @cached_property
    def _found(self) -> dict[str, bool]:
        return {n: n not in self.missing and nltk_resource_found(n) for n in NLTK_RESOURCES}

    @cached_property
    def _fallback_sentences(self) -> Callable[[str], list[str]]:
        # lazy: optional (the benchmarks extra): a missing one is a recorded fallback
        from nltk.tokenize.punkt import PunktSentenceTokenizer

        return PunktSentenceTokenizer().tokenize

    def word_tokenize(self, text: str) -> list[str]:
        """``nltk.word_tokenize(text)``: Punkt sentences, then the Treebank word tokenizer."""
        # lazy: optional (the benchmarks extra): a missing one is a recorded fallback
        import nltk

        if self._found["punkt_tab"]:
            return nltk.word_tokenize(text)
        self._fallback("punkt_tab")
        # lazy: optional (the benchmarks extra): a missing one is a recorded fallback
        from nltk.tokenize import NLTKWordTokenizer

        words = NLTKWordTokenizer()
        return [t for s in self._fallback_sentences(text) for t in words.tokenize(s)]

    @cached_property
    def _lemmatizer(self) -> Callable[[str], str] | None:
        if not self._found["wordnet"]:
            return None
        # lazy: optional (the benchmarks extra): a missing one is a recorded fallback
        from nltk.stem import WordNetLemmatizer

        return WordNetLemmatizer().lemmatize

    def lemmatize(self, word: str) -> str:
        """``WordNetLemmatizer().lemmatize(word)`` (noun rules; unknown words unchanged)."""
        if self._lemmatizer is None:
            self._fallback("wordnet")
            return word
        return self._lemmatizer(word)

    @staticmethod
    def singularize(word: str) -> str:
        """Pattern's ``singularize`` (``bus`` -> ``bu``, ``ties`` -> ``ty``: its quirks kept)."""
        # lazy: optional (the benchmarks extra): a missing one is a recorded fallback
        from textblob.en.inflect import singularize

        return singularize(word)

    def pos_tag(self, tokens: list[str]) -> list[tuple[str, str]] | None:
        """``nltk.pos_tag(tokens)``, or ``None`` (recorded) when the tagger is not installed."""
        if not self._found["averaged_perceptron_tagger_eng"]:
            self._fallback("averaged_perceptron_tagger_eng")
            return None
        # lazy: optional (the benchmarks extra): a missing one is a recorded fallback
        import nltk

        return nltk.pos_tag(tokens)

    @cached_property
    def _spacy(self):
        if self.spacy_model is None:
            return None
        try:
            # lazy: optional (the benchmarks extra): a missing one is a recorded fallback
            import spacy

            return spacy.load(self.spacy_model)
        except (ImportError, OSError):
            return None

    def lemma_tags(self, text: str) -> list[tuple[str, str]]:
        """(``token.lemma_``, ``token.tag_``) of every spaCy token of ``text``.

        Without the spaCy model: NLTK tokens and tags with WordNet lemmas; without NLTK's tagger
        too, ``a``/``an``/``the`` tagged ``DT`` and every other token ``NN``. Either is
        recorded.
        """
        nlp = self._spacy
        if nlp is not None:
            return [(token.lemma_, token.tag_) for token in nlp(text)]
        self._fallback("spacy", "NLTK tags and WordNet lemmas instead of spaCy's")
        tokens = self.word_tokenize(text)
        tagged = self.pos_tag(tokens) or [
            (t, "DT" if t.lower() in ("a", "an", "the") else "NN") for t in tokens
        ]
        return [(self.lemmatize(w.lower()), tag) for w, tag in tagged]

    def similarity(self, threshold: float) -> Callable[[str, str], bool] | None:
        """AMBER's ``check_synonyms_word``: spaCy similarity of two words above ``threshold``.

        Returns ``None`` (recorded as a fallback) when spaCy or the model is not installed.
        """
        nlp = self._spacy
        if nlp is None:
            self._fallback("spacy")
            return None

        docs: dict[str, Any] = {}

        def doc(word: str) -> Any:
            if word not in docs:
                docs[word] = nlp(word)
            return docs[word]

        def similar(word1: str, word2: str) -> bool:
            return doc(word1).similarity(doc(word2)) > threshold

        return similar


def reference_marks(nlp: ReferenceNlp | None, answer_rule: str | None = None) -> dict[str, Any]:
    """How far a result is the reference script's: ``reference`` (bool) and ``approximate``
    (each fallback ``nlp`` used, one sentence; ``nlp`` ``None``: the benchmark uses no NLP),
    plus ``answer_rule`` when the benchmark has one."""
    approximate = nlp.approximations() if nlp is not None else []
    marks: dict[str, Any] = {}
    if answer_rule is not None:
        marks["answer_rule"] = answer_rule
    marks["reference"] = not approximate and answer_rule in (None, "reference")
    marks["approximate"] = approximate
    return marks
