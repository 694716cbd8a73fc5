"""COCO 2014 ground truth for CHAIR: the objects of an image, as both reference scripts build them.

An image's objects are the node words (:class:`~.chair.ChairVocabulary`)
of the categories of its instance annotations and of the COCO words in its reference captions.
Rohrbach's ``utils/chair.py`` reads ``instances_all2014.json`` / ``captions_all2014.json``;
RLAIF-V's ``eval_gpt_obj_halbench.py`` reads the train2014 and val2014 files. Both layouts are
read here: every ``<folder>/instances_*.json`` and ``<folder>/captions_*.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from mmrlaif.evaluation.hallucination.chair import ChairVocabulary
from mmrlaif.evaluation.hallucination.common import (
    BenchmarkDataError,
    BenchmarkFormatError,
    DataRoot,
    Fields,
    load_json,
)
from mmrlaif.evaluation.hallucination.nlp import ReferenceNlp

logger = logging.getLogger(__name__)


def _annotation_files(root: DataRoot, folder: str, kind: str) -> list[str]:
    files = [
        f
        for f in root.list_files(folder)
        if f.rsplit("/", 1)[-1].startswith(f"{kind}_") and f.endswith(".json")
    ]
    if not files:
        raise BenchmarkDataError(
            root.benchmark, root.path(f"{folder}/{kind}_*.json"), "no COCO annotation file"
        )
    return files


def load_coco_ground_truth(
    root: DataRoot,
    image_ids: Iterable[int],
    vocabulary: ChairVocabulary,
    nlp: ReferenceNlp | None = None,
    folder: str = "annotations",
) -> dict[int, frozenset[str]]:
    """Ground-truth COCO objects per image, as CHAIR builds them.

    An image's objects are the categories of its instance annotations (every
    ``<folder>/instances_*.json``, e.g. train2014 and val2014) together with the objects that
    :meth:`ChairVocabulary.caption_words` finds in its reference captions (every
    ``<folder>/captions_*.json``).

    Args:
        root: The data root.
        image_ids: The COCO image ids needed.
        vocabulary: The benchmark's synonym file, in its reference script's flavour.
        nlp: Tokenizer and normaliser for the captions; a fresh :class:`ReferenceNlp` when
            ``None``.
        folder: Folder of the COCO annotation files under ``root``.

    Returns:
        Image id -> COCO categories, for every requested id.

    Raises:
        BenchmarkDataError: If no instances or captions file is there, or a requested image is in
            no instances file (naming the image id).
        BenchmarkFormatError: If a file is malformed (naming file, record and problem), or a
            category name is not in the synonym file.
    """
    nlp = nlp or ReferenceNlp(spacy_model=None)
    wanted = set(image_ids)
    objects: dict[int, set[str]] = {i: set() for i in wanted}
    known_images: set[int] = set()
    for rel in _annotation_files(root, folder, "instances"):
        data, file = load_json(root, rel), root.path(rel)
        if not isinstance(data, dict):
            raise BenchmarkFormatError(file, None, "expected a JSON object with COCO sections")
        names = _categories(data, file, vocabulary)
        for label, record in _section(data, "images", file):
            known_images.add(Fields(file, label, record).integer("id"))
        for label, record in _section(data, "annotations", file):
            fields = Fields(file, label, record, id_key="id")
            image_id, category_id = fields.integer("image_id"), fields.integer("category_id")
            if category_id not in names:
                raise fields.error(f"unknown category_id {category_id}")
            if image_id in objects:
                objects[image_id].add(names[category_id])
    for rel in _annotation_files(root, folder, "captions"):
        data, file = load_json(root, rel), root.path(rel)
        if not isinstance(data, dict):
            raise BenchmarkFormatError(file, None, "expected a JSON object with COCO sections")
        for label, record in _section(data, "annotations", file):
            fields = Fields(file, label, record, id_key="id")
            image_id, caption = fields.integer("image_id"), fields.string("caption")
            if image_id in objects:
                objects[image_id].update(n for _, n in vocabulary.caption_words(caption, nlp))
    missing = sorted(wanted - known_images)
    if missing:
        raise BenchmarkDataError(
            root.benchmark,
            root.path(f"{folder}/instances_*.json"),
            f"COCO image id {missing[0]} ({len(missing)} missing in all) is in no instances file",
        )
    return {i: frozenset(objs) for i, objs in objects.items()}


def _section(data: dict, key: str, file: str) -> list[tuple[str, object]]:
    section = data.get(key)
    if not isinstance(section, list):
        raise BenchmarkFormatError(file, None, f"section {key!r} must be a list")
    return [(f"{key}[{i}]", record) for i, record in enumerate(section)]


def _categories(data: dict, file: str, vocabulary: ChairVocabulary) -> dict[int, str]:
    names: dict[int, str] = {}
    for label, record in _section(data, "categories", file):
        fields = Fields(file, label, record, id_key="id")
        name = fields.string("name")
        node = vocabulary.node(name)
        if node is None:
            raise fields.error(f"category {name!r} is not in the synonym file {vocabulary.source}")
        names[fields.integer("id")] = node
    return names
