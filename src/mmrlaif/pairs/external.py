"""Import external preference data in the published RLAIF-V dataset layout.

The released ``openbmb/RLAIF-V-Dataset`` rows hold ``image`` (HF ``Image``), ``question``,
``chosen``, ``rejected`` and optional ``idx`` / ``origin_dataset``; they become rows of the
pairs table with source ``external``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from mmrlaif.io import cell_to_image, image_to_cell
from mmrlaif.pairs.table import pair_row

REQUIRED: tuple[str, ...] = ("image", "question", "chosen", "rejected")


def import_rlaifv_rows(
    rows: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Convert RLAIF-V-layout rows into pairs-table rows.

    Rows with an empty chosen or rejected answer, or identical answers, are skipped and counted;
    a missing column or an undecodable image is an error naming the row.

    Returns:
        The pair rows and skips by reason (``empty_answer``, ``identical``).

    Raises:
        KeyError: Naming the row and the missing column.
        ImageError: Naming the row whose image cannot be decoded.
    """
    out, skips = [], Counter()
    for i, row in enumerate(rows):
        item = str(row.get("idx", i))
        for column in REQUIRED:
            if column not in row:
                raise KeyError(f"external row {item}: missing column {column!r}")
        chosen, rejected = (row["chosen"] or "").strip(), (row["rejected"] or "").strip()
        if not chosen or not rejected:
            skips["empty_answer"] += 1
            continue
        if chosen == rejected:
            skips["identical"] += 1
            continue
        image = cell_to_image(row["image"], f"external row {item}")
        cell = image_to_cell(image)
        digest = hashlib.sha256(cell["bytes"] + row["question"].encode()).hexdigest()[:16]
        prompt = {"prompt_id": f"ext-{digest}", "question": row["question"], "image": cell}
        out.append(pair_row(prompt, chosen, rejected, "external"))
    return out, dict(skips)
