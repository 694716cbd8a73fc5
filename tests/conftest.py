"""Shared fixtures: a small world and a tiny model, built once per test session."""

from __future__ import annotations

import pytest
import torch

from mmrlaif.config import TinyVLMConfig, WorldConfig
from mmrlaif.models.tiny import build_tiny_vlm
from mmrlaif.toyworld import WorldPaths, build_world

torch.set_num_threads(2)

SMALL_WORLD = WorldConfig(seed=7, n_train=40, n_align=10, n_eval=12)
SMALL_MODEL = TinyVLMConfig(
    vision_hidden=32,
    vision_layers=1,
    vision_heads=2,
    patch_size=16,
    text_hidden=32,
    text_layers=1,
    text_heads=2,
    text_intermediate=64,
)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> WorldPaths:
    """A 40/10/12-image world written once per session."""
    return build_world(SMALL_WORLD, tmp_path_factory.mktemp("world"))


@pytest.fixture()
def tiny_model():
    """A freshly initialised, very small VLM and its processor."""
    return build_tiny_vlm(SMALL_MODEL, SMALL_WORLD.image_size, seed=0)
