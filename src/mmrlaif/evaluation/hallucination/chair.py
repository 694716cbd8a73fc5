"""CHAIR as its two reference scripts compute it, from the benchmark's own synonym file.

* **Rohrbach et al. (2018)**, ``LisaAnne/Hallucination`` ``utils/chair.py``: ``synonyms.txt``
  (each line ``category, synonym, ...``; entries are *not* stripped, so an entry written after a
  double space never matches), ``nltk.word_tokenize`` of the lower-cased caption, Pattern's
  ``singularize`` on every token, a fixed list of two-word names.
* **RLAIF-V's Object HalBench** (lexicon path), ``eval/eval_gpt_obj_halbench.py`` class
  ``CHAIR``: ``synonyms_refine.txt`` (entries stripped), the same tokenizer, WordNet's
  lemmatizer instead of ``singularize`` (``men`` stays ``men``), and every synonym of two or more
  words as a two-word name.

Both then merge two-word names left to right (``baby``/``adult`` + an animal word is that
animal, ``passenger jet``/``passenger train`` a jet/train, ``bow tie`` a tie, ``toilet seat`` a
toilet, ``wine glas`` a wine glass), drop ``seat`` from a caption that says ``toilet``, keep the
words in the synonym file and map each to its line's first entry (the "node word"). Every
occurrence counts. Ground truth per image: the node words of its COCO instance categories and of
its reference captions (:func:`~mmrlaif.evaluation.hallucination.coco.load_coco_ground_truth`).

Figures (:class:`ChairResult`), as the scripts compute them: ``CHAIRs`` = captions with a
hallucinated word / all captions; ``CHAIRs_refine`` (RLAIF-V's "Response Hall") = the same over
captions with at least one COCO word; ``CHAIRi`` = hallucinated words / COCO words;
``obj_rec`` = distinct correctly named node words summed over captions / ground-truth node words
summed over captions. Where a script would divide by zero, the figure is 0.0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mmrlaif.evaluation.hallucination.common import (
    BenchmarkDataError,
    BenchmarkFormatError,
    DataRoot,
)
from mmrlaif.evaluation.hallucination.nlp import ReferenceNlp
from mmrlaif.evaluation.metrics import ratio

#: Rohrbach's synonym file, in the CHAIR data root.
ROHRBACH_SYNONYMS_FILE = "synonyms.txt"
#: RLAIF-V's synonym file, beside ``obj_halbench_300_with_image.jsonl``.
RLAIFV_SYNONYMS_FILE = "synonyms_refine.txt"
#: Where users get each file.
SYNONYM_SOURCES = {
    ROHRBACH_SYNONYMS_FILE: "LisaAnne/Hallucination, data/synonyms.txt",
    RLAIFV_SYNONYMS_FILE: "RLAIF-V (or RLHF-V), eval/data/synonyms_refine.txt",
}

#: Rohrbach's hard-coded two-word names (``utils/chair.py``).
ROHRBACH_DOUBLE_WORDS = (
    "motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal",
    "stop light", "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball",
    "baseball bat", "baseball glove", "tennis racket", "wine glass", "hot dog", "cell phone",
    "mobile phone", "teddy bear", "hair drier", "potted plant", "bow tie", "laptop computer",
    "stove top oven", "home plate",
)  # fmt: skip
_ANIMAL_WORDS = (
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
    "animal", "cub",
)  # fmt: skip
_VEHICLE_WORDS = ("jet", "train")

Flavour = Literal["rohrbach", "rlaifv"]


def _double_word_dict(double_words: Sequence[str]) -> dict[str, str]:
    table = {word: word for word in double_words}
    for animal in _ANIMAL_WORDS:
        table[f"baby {animal}"] = animal
        table[f"adult {animal}"] = animal
    for vehicle in _VEHICLE_WORDS:
        table[f"passenger {vehicle}"] = vehicle
    table["bow tie"] = "tie"
    table["toilet seat"] = "toilet"
    table["wine glas"] = "wine glass"
    return table


@dataclass(frozen=True)
class ChairVocabulary:
    """A synonym file read as one of the reference scripts reads it.

    Attributes:
        flavour: ``rohrbach`` or ``rlaifv``.
        inverse: Word (any entry of a line) -> the line's first entry (its node word).
        double_words: Two-word name -> the word it stands for.
        source: The synonym file it was read from, for messages.
    """

    flavour: Flavour
    inverse: Mapping[str, str]
    double_words: Mapping[str, str]
    source: str = ""

    @classmethod
    def parse(cls, text: str, flavour: Flavour, source: str = "") -> ChairVocabulary:
        """Read a synonym file's text (one ``node, synonym, ...`` line per COCO category)."""
        inverse: dict[str, str] = {}
        for line in text.splitlines(keepends=True):
            entries = line.strip().split(", ")
            if flavour == "rlaifv":
                entries = [e.strip() for e in entries]
            for entry in entries:
                inverse[entry] = entries[0]
        if flavour == "rohrbach":
            doubles = list(ROHRBACH_DOUBLE_WORDS)
        else:
            doubles = [w for w in inverse if len(w.strip().split(" ")) >= 2]
            doubles += ["home plate", "train track"]
        return cls(flavour, inverse, _double_word_dict(doubles), source)

    @classmethod
    def load(cls, root: DataRoot, flavour: Flavour, rel: str | None = None) -> ChairVocabulary:
        """Read the flavour's synonym file from a benchmark's data root.

        Raises:
            BenchmarkDataError: If the file is missing, naming it and where it comes from.
            BenchmarkFormatError: If it is empty.
        """
        name = ROHRBACH_SYNONYMS_FILE if flavour == "rohrbach" else RLAIFV_SYNONYMS_FILE
        rel = rel or name
        if not root.exists(rel):
            raise BenchmarkDataError(
                root.benchmark,
                root.path(rel),
                f"synonym file not found (download it from {SYNONYM_SOURCES[name]})",
            )
        vocabulary = cls.parse(root.read_text(rel), flavour, root.path(rel))
        if not any(vocabulary.inverse):
            raise BenchmarkFormatError(root.path(rel), None, "no synonyms")
        return vocabulary

    def node(self, name: str) -> str | None:
        """The node word of a synonym-file entry (e.g. a COCO category name), else ``None``."""
        return self.inverse.get(name)

    def caption_words(self, caption: str, nlp: ReferenceNlp) -> list[tuple[str, str]]:
        """``caption_to_words``: the (word, node word) of every COCO word, in caption order."""
        words = nlp.word_tokenize(caption.lower())
        normalise: Callable[[str], str] = (
            nlp.singularize if self.flavour == "rohrbach" else nlp.lemmatize
        )
        return self.object_words(self.merge_double_words([normalise(w) for w in words]))

    def merge_double_words(self, words: Sequence[str], keep_single: bool = True) -> list[str]:
        """Merge two-word names left to right (``a hot dog`` -> ``a``, ``hot dog``).

        Args:
            words: Normalised words.
            keep_single: Keep the words that are not part of a two-word name (the captions
                path); ``False`` keeps the two-word names only (the GPT path's
                ``get_double_words_only``).
        """
        merged, i = [], 0
        while i < len(words):
            pair = " ".join(words[i : i + 2])
            if pair in self.double_words:
                merged.append(self.double_words[pair])
                i += 2
                continue
            if keep_single:
                merged.append(words[i])
            i += 1
        return merged

    def object_words(self, words: Sequence[str]) -> list[tuple[str, str]]:
        """The (word, node word) of the synonym-file words among ``words`` (``seat`` dropped
        when ``toilet`` is there).

        Args:
            words: Words after :meth:`merge_double_words` (or, on the GPT path, extracted
                object names).
        """
        if "toilet" in words and "seat" in words:
            words = [w for w in words if w != "seat"]
        return [(w, self.inverse[w]) for w in words if w in self.inverse]


@dataclass(frozen=True)
class ChairResult:
    """CHAIR figures (fractions in [0, 1]) and the counts behind them.

    Attributes:
        chair_s: Captions with >= 1 hallucinated word / all captions (``CHAIRs``).
        chair_s_refine: The same over captions with >= 1 COCO word (``CHAIRs_refine``;
            RLAIF-V's "Response Hall").
        chair_i: Hallucinated COCO words / COCO words, every occurrence (``CHAIRi``).
        object_recall: Distinct correct node words / ground-truth node words, both summed over
            captions (``obj_rec``).
        avg_word_len: Mean of ``len(caption.strip().split(" "))`` (``avg_word_len``).
        n_captions: Captions scored.
        n_captions_with_objects: Captions with >= 1 COCO word.
        n_hallucinated_captions: Captions with >= 1 hallucinated COCO word.
        n_words: COCO words, every occurrence.
        n_hallucinated_words: Hallucinated COCO words, every occurrence.
        n_gt_objects: Ground-truth node words, summed over captions.
        n_gt_mentioned: Distinct correct node words, summed over captions.
        hallucinated_by_object: Node word -> hallucinated occurrences, sorted.
    """

    chair_s: float
    chair_s_refine: float
    chair_i: float
    object_recall: float
    avg_word_len: float
    n_captions: int
    n_captions_with_objects: int
    n_hallucinated_captions: int
    n_words: int
    n_hallucinated_words: int
    n_gt_objects: int
    n_gt_mentioned: int
    hallucinated_by_object: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-serialisable data."""
        return asdict(self)


def chair_counts(
    found: Sequence[Sequence[tuple[str, str]]],
    ground_truth: Sequence[Collection[str]],
    captions: Sequence[str],
) -> ChairResult:
    """Score captions' COCO words against each image's ground-truth node words.

    Args:
        found: Per caption, its (word, node word) list (:meth:`ChairVocabulary.caption_words`).
        ground_truth: Per caption, its image's node words.
        captions: The captions themselves (for ``avg_word_len``).

    Raises:
        ValueError: If the three sequences differ in length.
    """
    if not len(found) == len(ground_truth) == len(captions):
        raise ValueError(
            f"{len(captions)} captions, {len(found)} word lists, {len(ground_truth)} ground truths"
        )
    n_with = n_bad = n_words = n_hall = n_gt = n_hit = n_tokens = 0
    by_object: Counter[str] = Counter()
    for pairs, gt, caption in zip(found, ground_truth, captions, strict=True):
        hallucinated = [node for _, node in pairs if node not in gt]
        n_words += len(pairs)
        n_hall += len(hallucinated)
        by_object.update(hallucinated)
        n_bad += bool(hallucinated)
        n_with += bool(pairs)
        n_gt += len(gt)
        n_hit += len({node for _, node in pairs if node in gt})
        n_tokens += len(caption.strip().split(" "))
    return ChairResult(
        chair_s=ratio(n_bad, len(captions)),
        chair_s_refine=ratio(n_bad, n_with),
        chair_i=ratio(n_hall, n_words),
        object_recall=ratio(n_hit, n_gt),
        avg_word_len=ratio(n_tokens, len(captions)),
        n_captions=len(captions),
        n_captions_with_objects=n_with,
        n_hallucinated_captions=n_bad,
        n_words=n_words,
        n_hallucinated_words=n_hall,
        n_gt_objects=n_gt,
        n_gt_mentioned=n_hit,
        hallucinated_by_object=dict(sorted(by_object.items())),
    )


def chair_metrics(
    captions: Sequence[str],
    ground_truth: Sequence[Collection[str]],
    vocabulary: ChairVocabulary,
    nlp: ReferenceNlp | None = None,
) -> ChairResult:
    """CHAIR of captions (the lexicon path of either reference script).

    Args:
        captions: Model captions, one per image.
        ground_truth: Per caption, its image's node words (see
            :func:`~mmrlaif.evaluation.hallucination.coco.load_coco_ground_truth`).
        vocabulary: The synonym file, read in the reference script's flavour.
        nlp: Tokenizer and normaliser; a fresh :class:`ReferenceNlp` when ``None``.
    """
    nlp = nlp or ReferenceNlp(spacy_model=None)
    found = [vocabulary.caption_words(c, nlp) for c in captions]
    return chair_counts(found, ground_truth, captions)
