"""The toy world's validation split written in AMBER's published layout: a fixture benchmark.

Selection on a real benchmark (``pipeline.select_metric: amber_object_f1``...) reads the
benchmark from its data root with the same code as the reports. A tiny twin rehearsing a real
preset on CPU cannot read the real AMBER, so ``eval.benchmarks.data.amber: toyworld`` points the
selection at this export instead: the same files AMBER ships (``data/query/query_all.json``,
``data/annotations.json``, ``data/relation.json``, ``data/safe_words.txt``, ``image/``), with the
toy world's objects as the vocabulary and its synonyms as the associated words. Each validation
image gets one generative query; ``truth`` is its objects, ``hallu`` the world's other objects.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from mmrlaif import io
from mmrlaif.toyworld.vocab import OBJECTS, object_names

logger = logging.getLogger(__name__)

#: The generative prompt AMBER uses.
AMBER_PROMPT = "Describe this image."


def write_amber_layout(prompts_table: str | Path, out_dir: str | Path) -> Path:
    """Write one split's description prompts as an AMBER data root.

    Args:
        prompts_table: A prompts table of the world (``prompt_id``, ``image``, ``objects``).
        out_dir: The data root to write (created; replaced if present).

    Returns:
        ``out_dir``.
    """
    out = Path(out_dir)
    rows = io.read_rows(prompts_table)
    names = object_names()
    queries, annotations = [], []
    for i, row in enumerate(rows, start=1):
        image = f"AMBER_{i}.png"
        path = out / "image" / image
        path.parent.mkdir(parents=True, exist_ok=True)
        io.cell_to_image(row["image"], str(row["prompt_id"])).save(path)
        present = list(row["objects"])
        queries.append({"id": i, "image": image, "query": AMBER_PROMPT})
        annotations.append(
            {
                "id": i,
                "type": "generative",
                "truth": present,
                "hallu": [name for name in names if name not in present],
            }
        )
    # AMBER's tokens are single words: a multi-word synonym is found by its head noun anyway
    relation = {o.name: [s for s in o.synonyms if " " not in s] for o in OBJECTS}
    data = out / "data"
    (data / "query").mkdir(parents=True, exist_ok=True)
    (data / "query" / "query_all.json").write_text(json.dumps(queries, indent=1))
    (data / "annotations.json").write_text(json.dumps(annotations, indent=1))
    (data / "relation.json").write_text(json.dumps(relation, indent=1))
    (data / "safe_words.txt").write_text("")
    logger.info("wrote %d toy-world images in AMBER's layout to %s", len(rows), out)
    return out
