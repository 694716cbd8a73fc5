"""The HTML of the run report (:mod:`mmrlaif.tracking.report`): page, sections and tables.

Every function returns HTML text; text from artifacts is escaped (and stripped of control
characters) here. The figures come from :mod:`mmrlaif.tracking.plotting` as PNG ``data:`` URIs;
the example pairs' HTML is in :mod:`mmrlaif.tracking.report_pairs`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mmrlaif.tracking.plotting import line_panels, number, stacked_bars
from mmrlaif.tracking.report_data import IterationData, RunData

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MEASURES = (("object_hal", "ObjHal"), ("response_hal", "RespHal"), ("cover", "Cover"))
_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1150px;color:#222;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
img.plot{max-width:100%;display:block;margin:.6em 0}
.na{color:#777;font-style:italic}mark{background:#ffc2c2;padding:0 2px;border-radius:2px}
.pair{border:1px solid #ccc;border-radius:6px;padding:.6em 1em;margin:1em 0}
.pair .meta{color:#666;font-size:12px}.pair img.thumb{width:128px;image-rendering:pixelated;
float:right;margin-left:1em;border:1px solid #ccc}.answers{display:flex;gap:1em;clear:none}
.answers>div{flex:1;padding:.3em .6em;border-radius:4px;white-space:pre-wrap;word-break:break-word}
.chosen{background:#eef8ee}.rejected{background:#fbefef}tr.no td{color:#a00}
"""


class Html(str):
    """Text that is HTML already (not escaped again)."""


def esc(value: Any) -> str:
    """``value`` as escaped HTML text (control characters shown as U+FFFD); ``Html`` as is."""
    if isinstance(value, Html):
        return value
    return html.escape(_CONTROL.sub("\ufffd", str(value)))


def document(title: str, body: str) -> str:
    """The whole page."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def section(title: str, content: str) -> str:
    """A titled section."""
    slug = re.sub(r"\W+", "-", title.lower()).strip("-")
    return f'<section id="{slug}"><h2>{esc(title)}</h2>\n{content}</section>'


def not_available(reason: str | None = None) -> str:
    """The text of a section without data."""
    return f'<p class="na">Not available{": " + esc(reason) if reason else "."}</p>'


def table(headers: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> str:
    """A table (no header row when ``headers`` is ``None``); numbers right-aligned, ``None``
    shown as a dash."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers or ())
    body = []
    for row in rows:
        cells = []
        for v in row:
            numeric = isinstance(v, int | float) and not isinstance(v, bool)
            cell = "–" if v is None else f"{v:.4g}" if numeric else esc(v)
            cells.append(f'<td class="n">{cell}</td>' if numeric else f"<td>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    head = f"<tr>{head}</tr>\n" if head else ""
    return f"<table>{head}" + "\n".join(body) + "</table>\n"


def pct(value: Any, digits: int = 1) -> str | None:
    """A fraction as a percentage text, ``None`` when it is not a number."""
    v = number(value)
    return None if v is None else f"{v * 100:.{digits}f}%"


def header(data: RunData, generated: str) -> str:
    """Title, what run this is, and the first-to-last change of the headline measures."""
    its = data.iterations
    status = (
        "finished"
        if data.summary
        else "did not finish: the finish step left no summary (a task failed or the run was "
        "stopped; see pipeline.log)"
    )
    meta = [
        ("status", status),
        ("method", data.method or "unknown"),
        ("alignment iterations", str(max(len(its) - 1, 0))),
        ("MLflow run", data.run_id or "–"),
        ("tracking URI", (data.summary or {}).get("tracking_uri") or "–"),
        ("pipeline run folder", str(data.pipeline_run) if data.pipeline_run else "not found"),
        ("generated", generated),
    ]
    if (data.summary or {}).get("prompt_import"):
        meta.append(("alignment prompts imported", data.summary["prompt_import"]))
    registration = (data.summary or {}).get("registration")
    if registration:
        meta.append(("registered version", _registration(registration)))
    out = "<h1>mmrlaif run report</h1>\n" + table(None, meta)
    first, last = (its[0].headline, its[-1].headline) if its else ({}, {})
    changes = []
    for key, label in _MEASURES:
        a, b = number(first.get(key)), number(last.get(key))
        if a is not None and b is not None:
            rel = f" ({(b - a) / a:+.0%})" if a else ""
            changes.append(f"{label} {pct(a)} → {pct(b)}{rel}")
    if changes:
        out += f"<p><b>Base policy → final policy:</b> {esc('; '.join(changes))}</p>\n"
    return out


def hallucination_section(its: Sequence[IterationData]) -> str | None:
    """ObjHal, RespHal, Cover of the policy carried forward and of each trained candidate."""
    if not any("object_hal" in it.headline for it in its):
        return None
    kept = {True: "trained (new)", False: "incumbent", None: "–"}
    rows = []
    for it in its:
        c = it.candidate or {}
        rows.append(
            [it.iteration, "base policy" if it.iteration == 0 else kept.get(it.kept_new, "–")]
            + [pct(it.headline.get(k)) for k, _ in _MEASURES]
            + [pct(it.headline.get("hallucinated_partner_share"))]
            + [pct(c.get(k)) for k, _ in _MEASURES]
        )
    labels = [label for _, label in _MEASURES]
    headers = ["iteration", "policy carried forward", *labels, "partner share"]
    headers += [f"trained: {label}" for label in labels]
    lines = []
    for n, (key, label) in enumerate(_MEASURES):
        lines.append((label, [it.headline.get(key) for it in its], {"color": f"C{n}"}))
        cand = [it.candidate.get(key) if it.candidate else None for it in its]
        if any(v is not None for v in cand):
            style = {"color": f"C{n}", "linestyle": "--", "marker": "x"}
            lines.append((f"{label} (trained)", cand, style))
    plot = line_panels([("Hallucination and coverage", "%", lines)], len(its), scale=100)
    note = (
        "<p>Held-out eval split. Solid: the policy carried forward from each iteration; "
        "dashed: the policy the iteration trained (before selection).</p>"
    )
    return note + _img(plot) + table(headers, rows)


def pope_section(its: Sequence[IterationData]) -> str | None:
    """POPE accuracy, F1 and yes-ratio per negative-sampling category."""
    cats = sorted(
        {k[5:-9] for it in its for k in it.headline if re.fullmatch(r"pope_.+_accuracy", k)}
    )
    if not cats:
        return None
    headers = ["iteration"] + [f"{c} {m}" for c in cats for m in ("acc", "F1", "yes")]
    rows = [
        [it.iteration]
        + [
            pct(it.headline.get(f"pope_{c}_{m}"))
            for c in cats
            for m in ("accuracy", "f1", "yes_ratio")
        ]
        for it in its
    ]
    lines = []
    for n, c in enumerate(cats):
        lines.append(
            (f"{c} acc", [it.headline.get(f"pope_{c}_accuracy") for it in its], {"color": f"C{n}"})
        )
        f1 = [it.headline.get(f"pope_{c}_f1") for it in its]
        lines.append((f"{c} F1", f1, {"color": f"C{n}", "linestyle": "--"}))
    return _img(line_panels([("POPE", "%", lines)], len(its), scale=100)) + table(headers, rows)


def benchmarks_section(its: Sequence[IterationData]) -> str | None:
    """The field's benchmarks (``bench_*`` figures) per iteration, and any figure that is not
    its reference script's, with why."""
    keys = sorted({k for it in its for k in it.headline if k.startswith("bench_")})
    if not keys:
        return None
    rows = [
        [k[6:]]
        + [
            fixed(it.headline.get(k)) if k == "bench_mmhal_score" else pct(it.headline.get(k))
            for it in its
        ]
        for k in keys
    ]
    notes = {
        (name, why) for it in its for name, reasons in it.benchmark_notes.items() for why in reasons
    }
    text = "".join(
        f"<p><b>{esc(name)}: not the reference script's figures</b>: {esc(why)}</p>"
        for name, why in sorted(notes)
    )
    return text + table(["figure"] + [f"iteration {it.iteration}" for it in its], rows)


def pairs_section(its: Sequence[IterationData]) -> str | None:
    """Pair counts and skip reasons per iteration (table and stacked bars)."""
    rows = [(it, it.pairs or {}, it.n_pairs) for it in its[1:]]
    rows = [r for r in rows if r[1] or r[2] is not None]
    if not rows:
        return None
    reasons = sorted({r for _, s, _ in rows for r in (s.get("skips") or {})})
    headers = ["iteration", "prompts", "candidates", "pairs", "by source", "length ratio"]
    body = []
    for it, s, n in rows:
        by_source = s.get("by_source") or (it.dpo or {}).get("sources") or {}
        sources = ", ".join(f"{k}: {v}" for k, v in by_source.items())
        out = s.get("pairs_out", n)
        body.append(
            [it.iteration, s.get("prompts_in"), s.get("candidates_in"), out, sources or None]
            + [s.get("length_ratio")]
            + [(s.get("skips") or {}).get(r, 0) for r in reasons]
        )
    stacks = {"pairs kept": [b[3] or 0 for b in body]}
    stacks |= {
        f"skipped: {r}": [(s.get("skips") or {}).get(r, 0) for _, s, _ in rows] for r in reasons
    }
    plot = stacked_bars(
        [r[0].iteration for r in rows], stacks, "Pairs and skips by reason", "count"
    )
    note = "<p>Skip counts are in the builder's own units (prompts or candidate pairs).</p>"
    return _img(plot) + note + table(headers + [f"skipped: {r}" for r in reasons], body)


def labeling_table(rows: Sequence[tuple[int, Mapping[str, Any]]]) -> str:
    """Labeling statistics per iteration."""
    body = []
    for i, s in rows:
        counts = ", ".join(f"{k}: {v}" for k, v in (s.get("counts") or {}).items())
        body.append(
            [
                i,
                s.get("samples_in"),
                s.get("claims"),
                s.get("questions_answered"),
                pct(s.get("rejected_claims")),
                counts or None,
            ]
        )
    headers = ["iteration", "samples", "claims", "questions answered", "claims rejected", "counts"]
    return table(headers, body)


def dpo_section(its: Sequence[IterationData]) -> str | None:
    """DPO losses and reward margins: per-iteration summary and per-step curves."""
    trained = [it for it in its[1:] if it.dpo or it.skipped_reason or it.n_pairs is not None]
    if not trained:
        return None
    body, margins, losses = [], [], []
    for it in trained:
        steps = [h for h in (it.dpo or {}).get("history", []) if "step" in h and "loss" in h]
        margin = [h.get("rewards/margins") for h in steps]
        ok = [v for v in margin if number(v) is not None]
        final = next(
            (h["train_loss"] for h in (it.dpo or {}).get("history", []) if "train_loss" in h), None
        )
        body.append(
            [
                it.iteration,
                it.n_pairs,
                len(steps) or None,
                final,
                ok[-1] if ok else None,
                sum(ok) / len(ok) if ok else None,
                steps[-1].get("rewards/accuracies") if steps else None,
                it.skipped_reason,
            ]
        )
        xs = [h["step"] for h in steps]
        if steps:
            margins.append((f"iteration {it.iteration}", margin, {"x": xs}))
            losses.append((f"iteration {it.iteration}", [h["loss"] for h in steps], {"x": xs}))
    headers = ["iteration", "pairs", "logged steps", "train loss", "last reward margin"]
    headers += ["mean reward margin", "last reward accuracy", "skipped"]
    plot = ""
    if margins:
        panels = [
            ("Reward margin (chosen − rejected)", "margin", margins),
            ("Loss", "loss", losses),
        ]
        plot = _img(line_panels(panels, None, xlabel="training step"))
    return plot + table(headers, body)


def _registration(reg: Mapping[str, Any]) -> str:
    if reg.get("version") is None:
        return f"none ({reg.get('reason', '')})"
    state = "promoted" if reg.get("promoted") else "not promoted"
    return f"{reg['version']}, {state} ({reg.get('reason', '')})"


def fixed(value: Any) -> str:
    """A number with three decimals, a dash when it is not a number."""
    v = number(value)
    return "–" if v is None else f"{v:.3f}"


def _img(uri: str) -> str:
    return f'<img class="plot" alt="plot" src="{uri}">\n'
