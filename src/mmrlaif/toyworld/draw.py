"""Render a scene (objects with boxes) into a PIL image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from mmrlaif.toyworld.vocab import object_colour, object_kind

BACKGROUND = (232, 230, 222)


@dataclass(frozen=True)
class Placed:
    """An object placed in an image: its name, box (x0, y0, size) and drawn colour."""

    name: str
    x: int
    y: int
    size: int
    colour: tuple[int, int, int]


def place_objects(
    names: Sequence[str],
    rng: np.random.Generator,
    image_size: int,
    size_range: tuple[int, int],
    colour_jitter: int,
    grid_cell: int = 0,
    palette: str = "distinct",
    max_tries: int = 200,
) -> list[Placed]:
    """Place objects at random, non-overlapping positions.

    With ``grid_cell`` > 0 each object sits in its own cell of a grid of that pitch (an easier
    world when the cell matches the vision patch); with 0 positions are free, so objects straddle
    patch boundaries.

    Raises:
        RuntimeError: If the objects cannot be placed without overlap (sizes too large).
    """
    if grid_cell:
        return _place_on_grid(names, rng, image_size, size_range, colour_jitter, grid_cell, palette)
    placed: list[Placed] = []
    for name in names:
        base = np.array(object_colour(name, palette))
        for _ in range(max_tries):
            size = int(rng.integers(size_range[0], size_range[1] + 1))
            x = int(rng.integers(1, image_size - size - 1))
            y = int(rng.integers(1, image_size - size - 1))
            if all(_apart(x, y, size, p) for p in placed):
                jitter = rng.integers(-colour_jitter, colour_jitter + 1, size=3)
                colour = tuple(int(c) for c in np.clip(base + jitter, 0, 255))
                placed.append(Placed(name, x, y, size, colour))  # type: ignore[arg-type]
                break
        else:
            raise RuntimeError(f"cannot place {name!r} among {len(placed)} objects")
    return placed


def _place_on_grid(
    names: Sequence[str],
    rng: np.random.Generator,
    image_size: int,
    size_range: tuple[int, int],
    colour_jitter: int,
    cell: int,
    palette: str,
) -> list[Placed]:
    per_side = image_size // cell
    if len(names) > per_side**2:
        raise RuntimeError(f"{len(names)} objects do not fit a {per_side}x{per_side} grid")
    cells = rng.permutation(per_side**2)[: len(names)]
    placed = []
    for name, c in zip(names, cells, strict=True):
        size = int(rng.integers(size_range[0], min(size_range[1], cell - 2) + 1))
        slack = cell - size
        x = int(c % per_side) * cell + int(rng.integers(0, slack + 1))
        y = int(c // per_side) * cell + int(rng.integers(0, slack + 1))
        jitter = rng.integers(-colour_jitter, colour_jitter + 1, size=3)
        colour = np.clip(np.array(object_colour(name, palette)) + jitter, 0, 255)
        placed.append(Placed(name, x, y, size, tuple(int(v) for v in colour)))  # type: ignore[arg-type]
    return placed


def render(
    placed: Sequence[Placed], image_size: int, rng: np.random.Generator, pixel_noise: float
) -> Image.Image:
    """Draw placed objects on a plain background, then add Gaussian pixel noise."""
    image = Image.new("RGB", (image_size, image_size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for p in placed:
        _draw_shape(draw, object_kind(p.name).shape, p)
    if pixel_noise > 0:
        arr = np.asarray(image, dtype=np.float32)
        arr = arr + rng.normal(0.0, pixel_noise, size=arr.shape)
        image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return image


def _apart(x: int, y: int, size: int, other: Placed, gap: int = 1) -> bool:
    return (
        x + size + gap <= other.x
        or other.x + other.size + gap <= x
        or y + size + gap <= other.y
        or other.y + other.size + gap <= y
    )


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, p: Placed) -> None:
    x0, y0, s, c = p.x, p.y, p.size, p.colour
    x1, y1 = x0 + s - 1, y0 + s - 1
    cx, cy = x0 + s / 2, y0 + s / 2
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=c)
    elif shape == "ring":
        draw.ellipse((x0, y0, x1, y1), outline=c, width=max(2, s // 5))
    elif shape == "square":
        draw.rectangle((x0 + 1, y0 + 1, x1 - 1, y1 - 1), fill=c)
    elif shape == "slab":
        draw.rectangle((x0, cy - s * 0.28, x1, cy + s * 0.28), fill=c)
    elif shape == "bar":
        draw.rectangle((cx - s * 0.14, y0, cx + s * 0.14, y1), fill=c)
    elif shape == "cross":
        w = s * 0.14
        draw.rectangle((cx - w, y0, cx + w, y1), fill=c)
        draw.rectangle((x0, cy - w, x1, cy + w), fill=c)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=c)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=c)
    else:
        raise ValueError(f"unknown shape {shape!r} for object {p.name!r}")
