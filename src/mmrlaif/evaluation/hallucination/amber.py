"""AMBER (Wang et al., 2023): its data files - queries, annotations, vocabulary - checked.

Data layout (AMBER's repository, with the images added):

* ``data/query/query_all.json`` (or ``query_generative.json``, ``query_discriminative*.json``):
  a JSON array of ``{"id", "image", "query"}``;
* ``data/annotations.json``: a JSON array where record ``i`` has ``"id": i + 1`` (AMBER looks an
  answer's annotation up by position ``id - 1``) and a ``type``: ``generative`` with ``truth`` and
  ``hallu`` object lists, or a discriminative type with ``truth`` ``"yes"``/``"no"``:
  ``discriminative-hallucination`` (existence), ``discriminative-attribute-{state,number,action}``,
  ``discriminative-relation`` (some relation records say just ``relation``);
* ``data/relation.json``: object word -> associated words (synonyms and parts: ``"person":
  ["people", "man", ...]``); its keys and values together are AMBER's object vocabulary;
* ``data/safe_words.txt``: one word per line; words never counted as hallucinations;
* ``image/AMBER_<n>.jpg``.

The metrics are in :mod:`~mmrlaif.evaluation.hallucination.amber_metrics`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from mmrlaif.evaluation.hallucination.common import (
    BenchmarkFormatError,
    DataRoot,
    Fields,
    Query,
    load_json,
    load_records,
)

logger = logging.getLogger(__name__)

AMBER_DATA_DIR = "data"
AMBER_IMAGE_DIR = "image"
AMBER_QUERY_FILE = "query_all.json"

#: Annotation type -> (dimension, attribute kind or None).
AMBER_TYPES: Mapping[str, tuple[str, str | None]] = {
    "generative": ("generative", None),
    "discriminative-hallucination": ("existence", None),
    "discriminative-existence": ("existence", None),
    "discriminative-attribute-state": ("attribute", "state"),
    "discriminative-attribute-number": ("attribute", "number"),
    "discriminative-attribute-action": ("attribute", "action"),
    "discriminative-relation": ("relation", None),
    "relation": ("relation", None),
}


@dataclass(frozen=True)
class AmberQuery:
    """One AMBER query: ``id``, image file name and prompt."""

    id: int
    image: str
    query: str

    def to_query(self, image_dir: str = AMBER_IMAGE_DIR) -> Query:
        """The model query; the image is ``<image_dir>/<image>``."""
        return Query(
            item=f"amber/{self.id}", prompt=self.query, image_path=f"{image_dir}/{self.image}"
        )


@dataclass(frozen=True)
class AmberAnnotation:
    """One record of ``annotations.json``.

    Attributes:
        id: The query id it annotates.
        type: AMBER's type string (a key of :data:`AMBER_TYPES`).
        truth: Generative: objects in the image (in file order, repeats kept).
        hallu: Generative: objects that are likely hallucinations.
        answer: Discriminative: True when the truth is "yes", False for "no".
    """

    id: int
    type: str
    truth: tuple[str, ...] = ()
    hallu: tuple[str, ...] = ()
    answer: bool | None = None

    @property
    def dimension(self) -> str:
        """``generative``, ``existence``, ``attribute`` or ``relation``."""
        return AMBER_TYPES[self.type][0]

    @property
    def kind(self) -> str | None:
        """For attribute questions: ``state``, ``number`` or ``action``."""
        return AMBER_TYPES[self.type][1]


@dataclass(frozen=True)
class AmberVocabulary:
    """AMBER's object vocabulary.

    Attributes:
        association: ``relation.json``: word -> associated words.
        safe_words: ``safe_words.txt``.
    """

    association: Mapping[str, tuple[str, ...]]
    safe_words: frozenset[str]

    @property
    def words(self) -> frozenset[str]:
        """Every key and associated word of ``relation.json`` (AMBER's ``hallucination_words``)."""
        return frozenset(self.association).union(*self.association.values())


@dataclass(frozen=True)
class AmberData:
    """Everything AMBER needs: queries, annotations by id, vocabulary."""

    queries: tuple[AmberQuery, ...]
    annotations: Mapping[int, AmberAnnotation]
    vocabulary: AmberVocabulary


def load_amber_queries(root: DataRoot, rel: str) -> list[AmberQuery]:
    """Read a query file (``{"id", "image", "query"}`` records).

    Raises:
        BenchmarkDataError: If the file does not exist.
        BenchmarkFormatError: Naming file and record on a missing or mistyped field, a repeated
            id, or an empty file.
    """
    file = root.path(rel)
    queries: list[AmberQuery] = []
    seen: set[int] = set()
    for label, record in load_records(root, rel):
        fields = Fields(file, label, record, id_key="id")
        query = AmberQuery(fields.integer("id"), fields.string("image"), fields.string("query"))
        if query.id in seen:
            raise fields.error(f"duplicate id {query.id}")
        seen.add(query.id)
        queries.append(query)
    if not queries:
        raise BenchmarkFormatError(file, None, "no queries")
    return queries


def load_amber_annotations(root: DataRoot, rel: str) -> dict[int, AmberAnnotation]:
    """Read ``annotations.json``.

    Raises:
        BenchmarkDataError: If the file does not exist.
        BenchmarkFormatError: Naming file and record when the record's id is not its position + 1,
            its type is unknown, a generative record lacks ``truth``/``hallu`` lists, or a
            discriminative ``truth`` is not ``"yes"``/``"no"``.
    """
    file = root.path(rel)
    annotations: dict[int, AmberAnnotation] = {}
    for position, (label, record) in enumerate(load_records(root, rel)):
        fields = Fields(file, label, record, id_key="id")
        ann_id = fields.integer("id")
        if ann_id != position + 1:
            raise fields.error(
                f"id {ann_id} at position {position}: AMBER reads the annotation of id N at "
                "position N - 1, so ids must be 1, 2, 3... in order"
            )
        kind = fields.choice("type", tuple(AMBER_TYPES))
        if kind == "generative":
            ann = AmberAnnotation(ann_id, kind, fields.strings("truth"), fields.strings("hallu"))
        else:
            ann = AmberAnnotation(
                ann_id, kind, answer=fields.choice("truth", ("yes", "no")) == "yes"
            )
        annotations[ann_id] = ann
    if not annotations:
        raise BenchmarkFormatError(file, None, "no annotations")
    return annotations


def load_amber_vocabulary(root: DataRoot, relation: str, safe_words: str) -> AmberVocabulary:
    """Read ``relation.json`` and ``safe_words.txt``.

    Raises:
        BenchmarkDataError: If a file does not exist.
        BenchmarkFormatError: Naming the file and entry when ``relation.json`` is not an object
            of word -> list of words.
    """
    file = root.path(relation)
    data = load_json(root, relation)
    if not isinstance(data, dict):
        raise BenchmarkFormatError(file, None, "expected a JSON object of word -> list of words")
    association: dict[str, tuple[str, ...]] = {}
    for word, related in data.items():
        if not word.strip() or not isinstance(related, list):
            raise BenchmarkFormatError(file, f"entry {word!r}", "must map a word to a list")
        if not all(isinstance(w, str) and w.strip() for w in related):
            raise BenchmarkFormatError(file, f"entry {word!r}", f"not all words: {related!r}")
        association[word] = tuple(related)
    lines = root.read_text(safe_words).splitlines()
    return AmberVocabulary(association, frozenset(w.strip() for w in lines if w.strip()))


def load_amber(
    root: DataRoot, query_file: str = AMBER_QUERY_FILE, data_dir: str = AMBER_DATA_DIR
) -> AmberData:
    """Read and cross-check AMBER's queries, annotations and vocabulary.

    Args:
        root: The data root.
        query_file: File name under ``<data_dir>/query/``.
        data_dir: AMBER's ``data`` folder under ``root``.

    Raises:
        BenchmarkDataError: If a file does not exist.
        BenchmarkFormatError: As the single loaders, and naming the record when a query has no
            annotation or a generative annotation names a word that is not a key of
            ``relation.json`` (AMBER looks every ``truth``/``hallu`` word up there).
    """
    query_rel = f"{data_dir}/query/{query_file}"
    ann_rel = f"{data_dir}/annotations.json"
    queries = load_amber_queries(root, query_rel)
    annotations = load_amber_annotations(root, ann_rel)
    vocabulary = load_amber_vocabulary(
        root, f"{data_dir}/relation.json", f"{data_dir}/safe_words.txt"
    )
    for index, query in enumerate(queries):
        if query.id not in annotations:
            raise BenchmarkFormatError(
                root.path(query_rel), f"record {index} (id {query.id})", "no annotation"
            )
    for ann in annotations.values():
        for word in (*ann.truth, *ann.hallu):
            if word not in vocabulary.association:
                raise BenchmarkFormatError(
                    root.path(ann_rel),
                    f"record {ann.id - 1} (id {ann.id})",
                    f"object {word!r} is not a key of {data_dir}/relation.json",
                )
    return AmberData(tuple(queries), annotations, vocabulary)
