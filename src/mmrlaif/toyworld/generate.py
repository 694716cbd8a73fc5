"""Generate the toy world: seeded scenes, disjoint splits, and the tables the stages read."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmrlaif import io
from mmrlaif.config import WorldConfig, to_dict
from mmrlaif.models.chat import ANSWER_SUFFIX
from mmrlaif.toyworld.amber import write_amber_layout
from mmrlaif.toyworld.annotate import (
    DESCRIBE_INSTRUCTIONS,
    annotate_caption,
    negative_objects,
    presence_question,
)
from mmrlaif.toyworld.draw import place_objects, render
from mmrlaif.toyworld.vocab import object_names, partner_of

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "align", "eval", "val")
POPE_CATEGORIES: tuple[str, ...] = ("random", "popular", "adversarial")


@dataclass(frozen=True)
class Scene:
    """One image of the world with its ground truth."""

    image_id: str
    split: str
    objects: tuple[str, ...]
    image: Image.Image


@dataclass(frozen=True)
class WorldPaths:
    """Where :func:`build_world` wrote the world's tables."""

    root: Path

    @property
    def sft(self) -> Path:
        """Captions and yes/no questions on the train split (SFT data)."""
        return self.root / "sft.parquet"

    def prompts(self, split: str) -> Path:
        """Description prompts of a split.

        ``align`` feeds RLAIF-V / POVID, ``val`` picks checkpoints, ``eval`` is held out.
        """
        return self.root / f"prompts_{split}.parquet"

    @property
    def pope(self) -> Path:
        """POPE-style yes/no questions on the eval split."""
        return self.root / "pope_eval.parquet"

    @property
    def amber(self) -> Path:
        """The validation split in AMBER's published layout (``eval.benchmarks.data: toyworld``)."""
        return self.root / "benchmarks" / "amber"

    @property
    def summary(self) -> Path:
        """World statistics and the config that made it."""
        return self.root / "world.json"


def split_rng(cfg: WorldConfig, split: str, stream: str) -> np.random.Generator:
    """Independent, reproducible random stream for one split and purpose."""
    key = [cfg.seed, SPLITS.index(split), int.from_bytes(stream.encode()[:8], "little")]
    return np.random.default_rng(np.random.SeedSequence(key))


def sample_objects(rng: np.random.Generator, cfg: WorldConfig) -> list[str]:
    """Draw an image's objects under the co-occurrence prior.

    A target count k is drawn uniformly in [min_objects, max_objects]; objects are then drawn one
    by one, and each member of a co-occurring pair brings its absent partner with probability
    ``partner_prob`` (while room is left).
    """
    names = object_names()
    k = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    chosen: list[str] = []
    while len(chosen) < k:
        pool = [n for n in names if n not in chosen]
        name = pool[int(rng.integers(len(pool)))]
        chosen.append(name)
        partner = partner_of(name)
        if (
            partner is not None
            and partner not in chosen
            and len(chosen) < cfg.max_objects
            and rng.random() < cfg.partner_prob
        ):
            chosen.append(partner)
    return chosen


def make_scenes(cfg: WorldConfig, split: str, n: int) -> list[Scene]:
    """Draw ``n`` scenes of a split, reproducibly from ``cfg.seed``."""
    rng = split_rng(cfg, split, "scenes")
    scenes = []
    for i in range(n):
        objects = sample_objects(rng, cfg)
        placed = place_objects(
            objects,
            rng,
            cfg.image_size,
            cfg.object_size,
            cfg.colour_jitter,
            grid_cell=cfg.grid_cell,
            palette=cfg.palette,
        )
        image = render(placed, cfg.image_size, rng, cfg.pixel_noise)
        scenes.append(Scene(f"{split}-{i:05d}", split, tuple(objects), image))
    return scenes


def object_statistics(
    scenes: Sequence[Scene],
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Object frequency and conditional co-occurrence P(b | a) measured on scenes."""
    names = object_names()
    count = Counter(o for s in scenes for o in s.objects)
    pair = Counter((a, b) for s in scenes for a in s.objects for b in s.objects if a != b)
    n = max(len(scenes), 1)
    frequency = {a: count[a] / n for a in names}
    cooc = {a: {b: pair[(a, b)] / count[a] if count[a] else 0.0 for b in names} for a in names}
    return frequency, cooc


def sft_rows(
    scenes: Sequence[Scene], cfg: WorldConfig, frequency: dict[str, float] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """SFT examples: noisy captions and clean, balanced yes/no questions.

    Args:
        scenes: The train split.
        cfg: World settings.
        frequency: Share of train images holding each object; with
            ``cfg.positive_weighting == "inverse_frequency"`` a "yes" question asks for a present
            object with probability proportional to 1 / frequency, so rare objects get as many
            "yes" examples as common ones.

    Returns:
        The rows, and the number of objects the annotator hallucinated.
    """
    rng = split_rng(cfg, "train", "sft")
    rows: list[dict[str, Any]] = []
    n_hallucinated = 0
    for s in scenes:
        cell = io.image_to_cell(s.image)
        base = {"image_id": s.image_id, "image": cell, "objects": list(s.objects)}
        for j in range(cfg.captions_per_image):
            caption, hallucinated = annotate_caption(
                s.objects, rng, cfg.annotator_hallucination_rate, cfg.synonym_rate
            )
            n_hallucinated += len(hallucinated)
            instruction = DESCRIBE_INSTRUCTIONS[int(rng.integers(len(DESCRIBE_INSTRUCTIONS)))]
            rows.append(
                base
                | {
                    "example_id": f"{s.image_id}-c{j}",
                    "kind": "caption",
                    "question": instruction,
                    "answer": caption,
                }
            )
        absent = [n for n in object_names() if n not in s.objects]
        partners = [p for o in s.objects if (p := partner_of(o)) and p not in s.objects]
        for j in range(cfg.yesno_per_image):
            if j % 2 == 0:
                name, answer = _positive(s.objects, rng, cfg, frequency), "Yes"
            else:
                pool = partners if partners and rng.random() < cfg.adversarial_share else absent
                name, answer = pool[int(rng.integers(len(pool)))], "No"
            rows.append(
                base
                | {
                    "example_id": f"{s.image_id}-q{j}",
                    "kind": "yesno",
                    "question": presence_question(name, rng, cfg.synonym_rate) + ANSWER_SUFFIX,
                    "answer": answer,
                }
            )
    return rows, n_hallucinated


def _positive(
    objects: Sequence[str],
    rng: np.random.Generator,
    cfg: WorldConfig,
    frequency: dict[str, float] | None,
) -> str:
    if cfg.positive_weighting == "uniform" or not frequency:
        return objects[int(rng.integers(len(objects)))]
    weights = np.array([1.0 / max(frequency.get(o, 0.0), 1e-3) for o in objects])
    return objects[int(rng.choice(len(objects), p=weights / weights.sum()))]


def prompt_rows(scenes: Sequence[Scene], cfg: WorldConfig) -> list[dict[str, Any]]:
    """Description prompts (one per image).

    Ground truth rides along for evaluation and POVID only (never for the labeler): the object
    list and ``answer``, a correct caption (the annotator with no hallucination).
    """
    split = scenes[0].split if scenes else "eval"
    rng = split_rng(cfg, split, "prompts")
    answer_rng = split_rng(cfg, split, "answers")
    return [
        {
            "prompt_id": s.image_id,
            "image": io.image_to_cell(s.image),
            "question": DESCRIBE_INSTRUCTIONS[int(rng.integers(len(DESCRIBE_INSTRUCTIONS)))],
            "objects": list(s.objects),
            "answer": annotate_caption(s.objects, answer_rng, 0.0, cfg.synonym_rate)[0],
        }
        for s in scenes
    ]


def pope_rows(
    scenes: Sequence[Scene],
    cfg: WorldConfig,
    frequency: dict[str, float],
    cooccurrence: dict[str, dict[str, float]],
) -> list[dict[str, Any]]:
    """POPE-style questions per image and category: half present objects, half absent ones."""
    rng = split_rng(cfg, "eval", "pope")
    rows = []
    half = max(cfg.pope_per_image // 2, 1)
    for s in scenes:
        cell = io.image_to_cell(s.image)
        for category in POPE_CATEGORIES:
            positives = [s.objects[i] for i in rng.permutation(len(s.objects))][:half]
            negatives = negative_objects(s.objects, category, rng, frequency, cooccurrence)
            negatives = negatives[: len(positives)]
            for j, (name, label) in enumerate(
                [(p, True) for p in positives] + [(n, False) for n in negatives]
            ):
                rows.append(
                    {
                        "question_id": f"{s.image_id}-{category}-{j}",
                        "prompt_id": s.image_id,
                        "image": cell,
                        "category": category,
                        "object": name,
                        "question": presence_question(name, rng, 0.0) + ANSWER_SUFFIX,
                        "label": label,
                    }
                )
    return rows


def build_world(cfg: WorldConfig, out_dir: str | Path) -> WorldPaths:
    """Generate every split and write the world's tables under ``out_dir``.

    Returns:
        The paths of the written tables.

    Raises:
        RuntimeError: If two splits share an image (they must be disjoint).
    """
    paths = WorldPaths(Path(out_dir))
    sizes = {"train": cfg.n_train, "align": cfg.n_align, "eval": cfg.n_eval, "val": cfg.n_val}
    scenes = {split: make_scenes(cfg, split, n) for split, n in sizes.items()}
    _check_disjoint(scenes)
    frequency, cooc = object_statistics(scenes["train"])
    sft, n_hallucinated = sft_rows(scenes["train"], cfg, frequency)
    io.write_table(sft, paths.sft)
    for split in ("align", "eval", "val"):
        io.write_table(prompt_rows(scenes[split], cfg), paths.prompts(split))
    pope = pope_rows(scenes["eval"], cfg, frequency, cooc)
    io.write_table(pope, paths.pope)
    write_amber_layout(paths.prompts("val"), paths.amber)
    n_captions = sum(r["kind"] == "caption" for r in sft)
    summary = {
        "config": to_dict(cfg),
        "counts": {f"images_{k}": v for k, v in sizes.items()}
        | {"sft_examples": len(sft), "sft_captions": n_captions, "pope_questions": len(pope)},
        "annotator_hallucinations_per_caption": n_hallucinated / max(n_captions, 1),
        "object_frequency": frequency,
        "cooccurrence": cooc,
    }
    io.write_json(summary, paths.summary)
    logger.info(
        "world: %s, %.3f annotator hallucinations per caption",
        summary["counts"],
        summary["annotator_hallucinations_per_caption"],
    )
    return paths


def _check_disjoint(scenes: dict[str, list[Scene]]) -> None:
    seen: dict[str, str] = {}
    for split, items in scenes.items():
        for s in items:
            digest = hashlib.sha256(s.image.tobytes()).hexdigest()
            if digest in seen and not seen[digest].startswith(split):
                raise RuntimeError(f"{s.image_id} duplicates {seen[digest]} across splits")
            seen[digest] = s.image_id
