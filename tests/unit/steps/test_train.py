"""The TrainJob entry point end to end against a loopback S3 server (moto).

On a cluster the TrainJob's Torch plugin sets ``PET_NNODES``, ``PET_NPROC_PER_NODE``,
``PET_NODE_RANK``, ``PET_MASTER_ADDR`` and ``PET_MASTER_PORT`` and ``torchrun`` starts this
module on every rank. Here it runs as one plain process, and under real ``torchrun`` agents
given those variables: one node with two ranks, and two "nodes" (agents with separate working
folders) with one rank each, talking over gloo on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmrlaif import io
from mmrlaif.config import Config, DPOConfig, config_to_json
from mmrlaif.io import s3
from mmrlaif.models.load import save_model
from mmrlaif.pairs.rlaifv import Candidate, Pair
from mmrlaif.pairs.table import rlaifv_rows

pytestmark = pytest.mark.integration

ONE_STEP = {
    "max_steps": 1,
    "per_device_train_batch_size": 2,
    "learning_rate": 1e-2,
    "warmup_steps": 0,
    "save_strategy": "no",
}


@pytest.fixture()
def staged(small_world, tiny_model, s3_env, tmp_path):
    """A tiny policy, 4 pairs and a one-step DPO config staged as the KFP task stages them."""
    save_model(*tiny_model, tmp_path / "policy" / "model")
    prompts = io.read_rows(small_world.prompts("align"))[:4]
    pairs = [
        Pair(p["prompt_id"], Candidate(p["prompt_id"], 0, "A cup.", 0.0),
             Candidate(p["prompt_id"], 1, "A cup and a saucer and a dog.", -2.0))
        for p in prompts
    ]  # fmt: skip
    io.write_table(rlaifv_rows(pairs, prompts), tmp_path / "pairs" / "pairs.parquet")
    (tmp_path / "config.json").write_text(config_to_json(Config(dpo=DPOConfig(trainer=ONE_STEP))))
    stage = f"s3://{s3_env.bucket}/trainjobs/job-1"
    s3.upload_tree(tmp_path / "policy" / "model", f"{stage}/policy/model")
    s3.upload_tree(tmp_path / "pairs", f"{stage}/pairs")
    s3.upload_file(tmp_path / "config.json", f"{stage}/config.json")
    args = ["--config-uri", f"{stage}/config.json", "--iteration", "1"]
    args += ["--policy", f"{stage}/policy", "--pairs", f"{stage}/pairs", "--out", f"{stage}/out"]
    return stage, args


def _env(**extra: str) -> dict[str, str]:
    dist = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in dist and not k.startswith("PET_")}
    return env | {"OMP_NUM_THREADS": "1"} | extra


def _check_published(stage: str, tmp_path: Path) -> None:
    trained = s3.download_tree(f"{stage}/out", tmp_path / "trained")
    assert (trained / "model" / "config.json").is_file()
    assert not (trained / ".hf_cache").exists()
    report = json.loads((trained / "dpo.json").read_text())
    assert report["n_pairs"] == 4 and report["skipped_reason"] is None
    before = load_file(str(tmp_path / "policy" / "model" / "model.safetensors"))
    after = load_file(str(trained / "model" / "model.safetensors"))
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_single_process_trains_from_s3_and_publishes(staged, tmp_path):
    stage, args = staged
    proc = subprocess.run(
        [sys.executable, "-m", "mmrlaif.steps.train", *args],
        env=_env(MMRLAIF_WORKDIR=str(tmp_path / "work")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "published" in proc.stderr and "precompute_ref off" not in proc.stderr
    _check_published(stage, tmp_path)
    assert list((tmp_path / "work").iterdir()) == []  # the working folder is removed


@pytest.mark.parametrize(("nodes", "procs"), [(1, 2), (2, 1)], ids=["1node-2ranks", "2nodes"])
def test_under_torchrun_rank0_publishes_once(staged, tmp_path, nodes, procs):
    stage, args = staged
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torchrun = [str(Path(sys.executable).parent / "torchrun"), "--module"]
    agents = [
        subprocess.Popen(
            [*torchrun, "mmrlaif.steps.train", *args],
            env=_env(
                PET_NNODES=str(nodes),
                PET_NPROC_PER_NODE=str(procs),
                PET_NODE_RANK=str(node),
                PET_MASTER_ADDR="127.0.0.1",
                PET_MASTER_PORT=str(port),
                MMRLAIF_WORKDIR=str(tmp_path / f"node{node}"),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in range(nodes)
    ]
    logs = [agent.communicate(timeout=300)[0] for agent in agents]
    assert [a.returncode for a in agents] == [0] * nodes, "\n=====\n".join(x[-3000:] for x in logs)
    text = "\n".join(logs)
    assert text.count("published s3://") == 1 and "rank0 __main__: trained on 4 pairs" in text
    # one download of the inputs per node, shared by its ranks
    assert text.count("downloaded s3://") == 2 * nodes
    assert ("precompute_ref off" in text) == (nodes > 1)
    _check_published(stage, tmp_path)
    for node in range(nodes):
        assert list((tmp_path / f"node{node}").iterdir()) == []
