"""Shared fixtures: a small world, a tiny model (built once per session), loopback servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from mmrlaif.config import TinyVLMConfig, WorldConfig
from mmrlaif.toyworld import WorldPaths, build_world
from mmrlaif.toyworld.tiny import build_tiny_vlm
from tests import servers

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


# --------------------------------------------------------------------------------------------
# Loopback S3 (moto) and MLflow servers; see tests/servers.py
# --------------------------------------------------------------------------------------------


class S3Env(NamedTuple):
    """What ``s3_env`` returns: the S3 endpoint and a fresh, empty bucket on it."""

    endpoint: str
    bucket: str


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.MotoServer]:
    """A ``moto_server`` on 127.0.0.1 for the session; ``.endpoint`` is its URL."""
    with servers.run_moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture()
def s3_env(moto_server: servers.MotoServer, monkeypatch: pytest.MonkeyPatch) -> S3Env:
    """Point mmrlaif and boto3 at moto with fake credentials; a fresh bucket per test.

    The environment is restored after the test (``monkeypatch``).
    """
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("MMRLAIF_S3_"):
            monkeypatch.delenv(name)
    for name, value in servers.FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    missing = str(Path(moto_server.log).parent / "no-such-aws-file")
    monkeypatch.setenv("AWS_CONFIG_FILE", missing)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", missing)
    monkeypatch.setenv("MMRLAIF_S3_ENDPOINT_URL", moto_server.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server.endpoint)
    return S3Env(moto_server.endpoint, moto_server.create_bucket())


@pytest.fixture(scope="session")
def mlflow_server(
    moto_server: servers.MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[servers.MlflowServer]:
    """An ``mlflow server`` on 127.0.0.1 (SQLite store) proxying artifacts to a moto bucket.

    ``.uri`` is the tracking URI, ``.bucket`` the artifact bucket.
    """
    with servers.run_mlflow(moto_server, tmp_path_factory.mktemp("mlflow")) as server:
        yield server
