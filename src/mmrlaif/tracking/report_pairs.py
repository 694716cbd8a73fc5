"""The run report's example pairs (:mod:`mmrlaif.tracking.report`): which pairs to show, read
from an iteration's pairs and feedback tables, and their HTML.

In the rejected answer of a pair shown, the rejected claims (RLAIF-V) or the words not in the
chosen answer (pairs without feedback) are marked; the prompt image is shown as a thumbnail.
"""

from __future__ import annotations

import base64
import difflib
import io
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from PIL import Image

from mmrlaif.io import read_rows, read_table
from mmrlaif.models.chat import EOS_TOKEN, IMAGE_TOKEN, message_text
from mmrlaif.tracking.report_html import esc, fixed

_VERDICTS = ("prompt_id", "sample_idx", "claims", "questions", "p_yes", "accepted", "score")
_QUESTION = re.compile(r"USER:\s*(?:<image>)?\s*(?P<q>.*?)\s*ASSISTANT:\s*$", re.S)
_LEXICON_CLAIM = re.compile(r"there (?:is|are) (?:an? |some )?(?P<s>.+?) in the image\.?", re.I)
_TOKEN = re.compile(r"\w+|[^\w\s]")


def example_pairs(
    pairs_table: str | Path, feedback_table: str | Path | None, k: int, seed: int = 0
) -> list[dict[str, Any]]:
    """Up to ``k`` pairs to show, seeded: pairs whose rejected answer has a rejected claim
    first, one per prompt before any prompt repeats.

    Returns:
        Pair rows (image columns left out) with ``image`` (the first image's bytes or ``None``)
        and, for RLAIF-V pairs, ``chosen_feedback`` / ``rejected_feedback``: the answer's claims,
        questions, P(yes), verdicts and score.
    """
    names = pq.read_schema(pairs_table).names
    rows = read_rows(pairs_table, [c for c in names if c not in ("images", "image")])
    feedback: dict[tuple[str, int], dict[str, Any]] = {}
    if feedback_table is not None and Path(feedback_table).is_file():
        for row in read_rows(feedback_table, _VERDICTS):
            feedback[(str(row["prompt_id"]), int(row["sample_idx"]))] = row
    for row in rows:
        for side in ("chosen", "rejected"):
            idx = row.get(f"{side}_idx")
            verdict = feedback.get((str(row["prompt_id"]), int(idx))) if idx is not None else None
            if verdict is not None:
                row[f"{side}_feedback"] = verdict
    rng = random.Random(seed)
    flagged = [i for i, r in enumerate(rows) if _has_rejected_claim(r)]
    rest = sorted(set(range(len(rows))) - set(flagged))
    order = rng.sample(flagged, len(flagged)) + rng.sample(rest, len(rest))
    first: list[int] = []
    repeats: list[int] = []
    seen: set[str] = set()
    for i in order:
        prompt = str(rows[i].get("prompt_id"))
        (repeats if prompt in seen else first).append(i)
        seen.add(prompt)
    picked = sorted((first + repeats)[: max(k, 0)])
    images = _images(pairs_table, names, picked)
    return [rows[i] | {"image": image} for i, image in zip(picked, images, strict=True)]


def _has_rejected_claim(row: Mapping[str, Any]) -> bool:
    return False in ((row.get("rejected_feedback") or {}).get("accepted") or [])


def _images(pairs_table: str | Path, names: Sequence[str], indices: Sequence[int]) -> list:
    column = "images" if "images" in names else "image" if "image" in names else None
    if column is None or not indices:
        return [None] * len(indices)
    cells = read_table(pairs_table, [column]).column(column).take(list(indices)).to_pylist()
    out = []
    for cell in cells:
        cell = cell[0] if isinstance(cell, list) and cell else cell
        out.append(cell.get("bytes") if isinstance(cell, Mapping) else None)
    return out


def examples_section(shown: Sequence[tuple[int, Mapping[str, Any]]]) -> str:
    """Example pairs; in the rejected answer, the rejected claims (RLAIF-V) or the words not in
    the chosen answer (pairs without feedback) are marked."""
    return "\n".join(_pair(i, row) for i, row in shown)


def _pair(iteration: int, row: Mapping[str, Any]) -> str:
    chosen, rejected = _answer(row.get("chosen")), _answer(row.get("rejected"))
    fb = row.get("rejected_feedback")
    if fb:
        verdicts = list(zip(fb.get("claims") or [], fb.get("accepted") or [], strict=False))
        spans = _claim_spans(rejected, [c for c, ok in verdicts if not ok])
        how = "rejected claims marked"
    else:
        spans, how = _diff_spans(chosen, rejected), "words not in the chosen answer marked"
    scores = ""
    if row.get("chosen_score") is not None:
        scores = f" · scores {row['chosen_score']:g} vs {row.get('rejected_score', 0):g}"
    meta = f"iteration {iteration} · prompt {row.get('prompt_id')} · {row.get('source')}{scores}"
    image = row.get("image")
    thumb = f'<img class="thumb" alt="prompt image" src="{_thumb(image)}">' if image else ""
    out = [
        f'<div class="pair">{thumb}<div class="meta">{esc(meta)} · {how}</div>',
        f"<p><b>Q:</b> {esc(_question(row.get('prompt')))}</p>",
        f'<div class="answers"><div class="chosen"><b>chosen</b>\n{esc(chosen)}</div>',
        f'<div class="rejected"><b>rejected</b>\n{_marked(rejected, spans)}</div></div>',
    ]
    if fb and fb.get("claims"):
        rows = zip(
            fb["claims"],
            fb.get("questions") or [],
            fb.get("p_yes") or [],
            fb["accepted"],
            strict=False,
        )
        trs = [
            f'<tr class="{"yes" if ok else "no"}"><td>{esc(c)}</td><td>{esc(q)}</td>'
            f'<td class="n">{fixed(p)}</td><td>{"accepted" if ok else "rejected"}</td></tr>'
            for c, q, p, ok in rows
        ]
        head = "".join(
            f"<th>{h}</th>"
            for h in ("claim of the rejected answer", "question", "P(yes)", "verdict")
        )
        out.append(f"<table><tr>{head}</tr>{''.join(trs)}</table>")
    return "\n".join(out) + "</div>"


def _answer(cell: Any) -> str:
    """An answer of the pairs table: an assistant turn (or, in older tables, a string)."""
    if isinstance(cell, list | tuple):
        return message_text(cell).strip()
    return str(cell or "").strip().removesuffix(EOS_TOKEN).strip()


def _question(prompt: Any) -> str:
    """The question of the pairs table's user turn (or of an older table's prompt string)."""
    if isinstance(prompt, list | tuple):
        return message_text(prompt).strip()
    m = _QUESTION.fullmatch(str(prompt or ""))
    return m["q"] if m else str(prompt or "").replace(IMAGE_TOKEN, "").strip()


def _claim_spans(text: str, claims: Iterable[str]) -> list[tuple[int, int]]:
    """Where the claims occur in ``text``: the claim itself, or the object of a lexicon claim
    (``There is a <object> in the image.``)."""
    spans = []
    for claim in claims:
        m = _LEXICON_CLAIM.fullmatch(claim.strip())
        for phrase in {claim.strip().rstrip("."), m["s"] if m else ""} - {""}:
            pattern = rf"(?<!\w){re.escape(phrase)}(?!\w)"
            spans += [x.span() for x in re.finditer(pattern, text, re.I)]
    return spans


def _diff_spans(chosen: str, rejected: str) -> list[tuple[int, int]]:
    """Runs of words (and punctuation) of ``rejected`` that ``chosen`` does not have."""
    words = [(m.group(), m.span()) for m in _TOKEN.finditer(rejected)]
    theirs = [m.group() for m in _TOKEN.finditer(chosen)]
    ops = difflib.SequenceMatcher(None, theirs, [w for w, _ in words], autojunk=False).get_opcodes()
    return [
        (words[j1][1][0], words[j2 - 1][1][1])
        for op, _, _, j1, j2 in ops
        if op in ("replace", "insert")
    ]


def _marked(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """``text`` escaped, with the (merged) spans in ``<mark>``."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, pos = [], 0
    for start, end in merged:
        out += [esc(text[pos:start]), f"<mark>{esc(text[start:end])}</mark>"]
        pos = end
    return "".join(out) + esc(text[pos:])


def _thumb(data: bytes) -> str:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image.thumbnail((256, 256))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
