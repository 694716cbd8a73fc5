"""The pairs table: TRL's vision DPO layout plus provenance columns.

Columns: ``prompt`` (the user turn in the conversational layout: an image slot, then the
question), ``chosen`` and ``rejected`` (an assistant turn each), ``images`` (a one-image list in
the HF ``Image`` layout), and provenance: ``prompt_id``, ``source``
(``rlaifv`` | ``povid_text`` | ``povid_noise`` | ``external`` | ``replay_yesno``),
``chosen_score``, ``rejected_score``, ``chosen_idx``, ``rejected_idx``.
``datasets.load_dataset("parquet")`` reads it and TRL's ``DPOTrainer`` consumes it as is. The
table holds no model's chat format: training renders it through the policy's own
(:class:`mmrlaif.training.data.PreferenceCollator`), so one table serves any family.

A ``povid_noise`` row whose ``rejected`` is a placeholder naming the noise
(:func:`online_noise_row`, e.g. ``[online noise rejection: step=500 clamp=no
reference_tokens=own]``) is a pair whose rejected answer is built at training time (POVID's
online noise rejection, :mod:`mmrlaif.training.povid`); only the project's trainer reads such a
table (readers that only show the pairs show the placeholder).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mmrlaif.models.chat import assistant_message, message_text, user_message
from mmrlaif.pairs.rlaifv import Pair

SOURCES: tuple[str, ...] = ("rlaifv", "povid_text", "povid_noise", "external", "replay_yesno")


def pair_row(
    prompt: Mapping[str, Any],
    chosen: str,
    rejected: str,
    source: str,
    chosen_score: float | None = None,
    rejected_score: float | None = None,
    chosen_idx: int | None = None,
    rejected_idx: int | None = None,
) -> dict[str, Any]:
    """One row of the pairs table from a prompt row and two answers.

    Raises:
        ValueError: On an unknown source, or an empty chosen or rejected answer.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown pair source {source!r} (one of {', '.join(SOURCES)})")
    pid = str(prompt["prompt_id"])
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if not text.strip():
            raise ValueError(f"{pid}: empty {name} answer")
    return {
        "prompt": user_message(prompt["question"]),
        "chosen": assistant_message(chosen.strip()),
        "rejected": assistant_message(rejected.strip()),
        "images": [prompt["image"]],
        "prompt_id": pid,
        "source": source,
        "chosen_score": chosen_score,
        "rejected_score": rejected_score,
        "chosen_idx": chosen_idx,
        "rejected_idx": rejected_idx,
    }


@dataclass(frozen=True)
class NoiseSpec:
    """How an online noise rejection is built (``povid.*`` of the iteration that wrote the row).

    Attributes:
        step: Forward-diffusion step of the noise.
        clamp: Clip the noised pixels before the 8-bit conversion.
        ref_tokens: Whose arg-max the reference model scores: ``own`` or ``policy``.
    """

    step: int = 500
    clamp: bool = False
    ref_tokens: str = "own"

    def text(self) -> str:
        """The row's ``rejected`` placeholder that carries this spec."""
        clamp = "yes" if self.clamp else "no"
        return (
            f"[online noise rejection: step={self.step} clamp={clamp} "
            f"reference_tokens={self.ref_tokens}]"
        )


#: The reference's noise: step 500, no clamping, each model scores its own arg-max.
REFERENCE_NOISE = NoiseSpec()

_ONLINE = re.compile(
    r"\[online noise rejection: step=(?P<step>\d+) clamp=(?P<clamp>yes|no) "
    r"reference_tokens=(?P<ref>own|policy)\]"
)


def online_noise_row(
    prompt: Mapping[str, Any], chosen: str, spec: NoiseSpec = REFERENCE_NOISE
) -> dict[str, Any]:
    """A ``povid_noise`` row whose rejected answer is built online from ``chosen``: its
    ``rejected`` is a placeholder naming how (:meth:`NoiseSpec.text`).

    Raises:
        ValueError: On an empty chosen answer.
    """
    return pair_row(prompt, chosen, spec.text(), "povid_noise")


def online_spec(row: Mapping[str, Any]) -> NoiseSpec | None:
    """The spec of a row whose rejected answer is built at training time (else ``None``)."""
    if row.get("source") != "povid_noise":
        return None
    match = _ONLINE.fullmatch(message_text(row["rejected"]).strip())
    if match is None:
        return None
    return NoiseSpec(int(match["step"]), match["clamp"] == "yes", match["ref"])


def rlaifv_rows(
    pairs: Sequence[Pair], prompts: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Rows of RLAIF-V pairs.

    Raises:
        KeyError: Naming a pair whose prompt has no prompt row.
    """
    by_id = {str(p["prompt_id"]): p for p in prompts}
    rows = []
    for pair in pairs:
        if pair.prompt_id not in by_id:
            raise KeyError(f"pair for prompt {pair.prompt_id!r}: no such prompt row")
        rows.append(
            pair_row(
                by_id[pair.prompt_id],
                pair.chosen.response,
                pair.rejected.response,
                "rlaifv",
                pair.chosen.score,
                pair.rejected.score,
                pair.chosen.sample_idx,
                pair.rejected.sample_idx,
            )
        )
    return rows
