"""The in-task policy server: started on the policy, sampled through over real HTTP, stopped;
with ``python -m mmrlaif.models.serve`` standing in for ``vllm serve`` (the tiny model)."""

import sys
import urllib.error
import urllib.request
from dataclasses import replace

import pytest

from mmrlaif.config import Config, ConfigError, from_dict
from mmrlaif.io import read_rows
from mmrlaif.models.load import save_model
from mmrlaif.sampling.policy_server import PolicyServerError, policy_server
from mmrlaif.steps.sample import sample_step

SERVE = [sys.executable, "-m", "mmrlaif.models.serve", "--model", "{model}"]
SERVE += ["--host", "{host}", "--port", "{port}"]


def _cfg(tmp_path, **sampling) -> Config:
    base = {"n": 2, "max_new_tokens": 6, "prompts_per_batch": 4}
    return from_dict(
        Config, {"run": {"output_dir": str(tmp_path)}, "sampling": {**base, **sampling}}
    )


def test_sampling_through_a_server_started_on_the_policy(tmp_path, small_world, tiny_model):
    save_model(*tiny_model, tmp_path / "policy" / "model")
    served = _cfg(
        tmp_path, backend="openai", serve_policy=True, serve_command=SERVE, serve_timeout_s=120
    )
    sample_step(served, 1, tmp_path / "policy", small_world.root, tmp_path / "served")
    sample_step(_cfg(tmp_path), 1, tmp_path / "policy", small_world.root, tmp_path / "local")
    a = read_rows(tmp_path / "served" / "samples.parquet")
    b = read_rows(tmp_path / "local" / "samples.parquet")
    strip = [{k: v for k, v in r.items() if k != "policy"} for r in a]
    assert len(a) == 20 and strip == [{k: v for k, v in r.items() if k != "policy"} for r in b]


def test_the_server_stops_and_failures_are_clear(tmp_path, tiny_model):
    save_model(*tiny_model, tmp_path / "m")
    with (
        policy_server(tmp_path / "m", SERVE, timeout_s=120) as url,
        urllib.request.urlopen(f"{url}/models", timeout=5) as resp,
    ):
        assert resp.status == 200
    with pytest.raises(urllib.error.URLError):  # gone once the block ends
        urllib.request.urlopen(f"{url}/models", timeout=2)
    crash = [sys.executable, "-c", "import sys; print('no GPU here'); sys.exit(3)"]
    with (
        pytest.raises(PolicyServerError, match=r"exited with code 3(.|\n)*no GPU here"),
        policy_server(tmp_path / "m", crash, timeout_s=30),
    ):
        pass
    idle = [sys.executable, "-c", "import time; time.sleep(60)"]
    with (
        pytest.raises(PolicyServerError, match="not ready within 1 s"),
        policy_server(tmp_path / "m", idle, timeout_s=1, poll_s=0.2),
    ):
        pass


def test_serve_policy_needs_the_openai_backend(tmp_path):
    with pytest.raises(ConfigError, match="serve_policy needs backend: openai"):
        _cfg(tmp_path, serve_policy=True)
    cfg = _cfg(tmp_path, backend="openai", serve_policy=True)  # no endpoint needed
    assert cfg.sampling.endpoint is None
    assert replace(cfg.sampling, endpoint="x").serve_command[:2] == ("vllm", "serve")
