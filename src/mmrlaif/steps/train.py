"""The ``train-dpo`` component's step (:func:`train_in_task`, :func:`dpo_step`), also the
training entry point of a DPO TrainJob: ``python -m mmrlaif.steps.train``.

Run on every rank (under ``torchrun`` on a cluster, or as one plain process)::

    python -m mmrlaif.steps.train --config-uri s3://.../config.json --iteration 1 \\
        --policy s3://.../policy --pairs s3://.../pairs --out s3://.../trained

Per node, local rank 0 downloads the config, the policy (``<policy>/model``) and the pairs into
a node folder the other local ranks wait for. Each rank trains into its own folder with
:func:`dpo_step` (the HF Trainer inside sets up ``torch.distributed`` from
torchrun's environment); their Hugging Face ``datasets`` cache is the node's, because TRL's
reference-log-prob precompute writes its cache file on global rank 0 only and every rank reads
it back from the same path. Across nodes that path is not shared, so with several nodes the
reference model stays live (``dpo.precompute_ref`` is turned off, with a warning). Only global
rank 0 (``RANK``; 0 when unset) uploads the trained policy run folder to ``--out``, after a
barrier when ``torch.distributed`` is initialised.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mmrlaif import artifacts
from mmrlaif.config import Config, config_to_json, parse_config
from mmrlaif.config.povid import povid_iteration
from mmrlaif.io import s3

if TYPE_CHECKING:
    from mmrlaif.training.dpo import DPOResult

logger = logging.getLogger(__name__)

READY = "inputs.ready"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of the entry point."""
    parser = argparse.ArgumentParser(prog="python -m mmrlaif.steps.train", description=__doc__)
    parser.add_argument("--config-uri", required=True, help="the resolved config (JSON/YAML)")
    parser.add_argument("--iteration", type=int, required=True)
    parser.add_argument("--policy", required=True, help="policy run folder (holds model/)")
    parser.add_argument("--pairs", required=True, help="pairs table folder")
    parser.add_argument("--out", required=True, help="where the trained policy run goes")
    parser.add_argument(
        "--workdir",
        default=os.environ.get("MMRLAIF_WORKDIR"),
        help="parent of the node's working folder (default: the system temp folder)",
    )
    parser.add_argument("--wait-s", type=float, default=3600.0, help="wait for local rank 0")
    return parser.parse_args(argv)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _node_dir(workdir: str | None) -> Path:
    """A working folder all local ranks agree on: the children of one torchrun agent share
    its PID; a single process gets a fresh temporary folder."""
    base = Path(workdir or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    if _env_int("LOCAL_WORLD_SIZE", 1) == 1:
        return Path(tempfile.mkdtemp(prefix="mmrlaif-launch-", dir=base))
    node = base / f"mmrlaif-launch-{os.getppid()}"
    node.mkdir(exist_ok=True)
    return node


def _fetch_inputs(args: argparse.Namespace, inputs: Path, settings: s3.S3Settings) -> None:
    """Download (or, for local paths, copy) the config, the policy's model and the pairs."""
    inputs.mkdir(parents=True, exist_ok=True)
    model_uri = f"{args.policy.rstrip('/')}/model"
    if s3.is_s3(args.config_uri):
        s3.download_file(args.config_uri, inputs / "config.json", settings)
        s3.download_tree(model_uri, inputs / "policy" / "model", settings)
        s3.download_tree(args.pairs, inputs / "pairs", settings)
    else:
        shutil.copyfile(args.config_uri, inputs / "config.json")
        shutil.copytree(model_uri, inputs / "policy" / "model")
        shutil.copytree(args.pairs, inputs / "pairs")


def _wait_for(marker: Path, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while not marker.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"local rank 0 did not provide the inputs ({marker}) in {wait_s}s")
        time.sleep(0.5)


def _barrier() -> None:
    import torch.distributed as dist  # lazy: torch, only in the training process

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _for_world(cfg: Config) -> Config:
    """Turn the reference precompute off when ranks span several nodes (see the module doc)."""
    if cfg.dpo.precompute_ref and _env_int("WORLD_SIZE", 1) > _env_int("LOCAL_WORLD_SIZE", 1):
        logger.warning("several nodes: dpo.precompute_ref off, the reference model stays live")
        return dataclasses.replace(cfg, dpo=dataclasses.replace(cfg.dpo, precompute_ref=False))
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    """Train one DPO iteration from staged inputs; global rank 0 publishes the result."""
    args = parse_args(argv)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s rank{rank} %(name)s: %(message)s")
    settings = s3.current_settings()
    node = _node_dir(args.workdir)
    inputs, out = node / "inputs", node / f"rank{rank}"
    try:
        if local_rank == 0 and not (node / READY).exists():
            _fetch_inputs(args, inputs, settings)
            (node / READY).touch()
        _wait_for(node / READY, args.wait_s)
        cfg = _for_world(parse_config((inputs / "config.json").read_text(), args.config_uri))
        cfg = povid_iteration(cfg, args.iteration)  # a POVID stage's own epochs
        (node / "hf_cache").mkdir(exist_ok=True)
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        (out / ".hf_cache").symlink_to(node / "hf_cache", target_is_directory=True)
        result = dpo_step(cfg, args.iteration, inputs / "policy", inputs / "pairs", out)
        _barrier()  # every rank has finished training and saving
        if rank == 0:
            (out / ".hf_cache").unlink()
            if s3.is_s3(args.out):
                s3.upload_tree(out, args.out, settings)
            else:
                shutil.copytree(out, args.out, dirs_exist_ok=True)
            logger.info("trained on %d pairs; published %s", result.n_pairs, args.out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
        if local_rank == 0:
            shutil.rmtree(node, ignore_errors=True)
        import torch.distributed as dist  # lazy: torch, only in the training process

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


def train_in_task(
    cfg: Config,
    iteration: int,
    policy_run: str | Path,
    pairs_dir: str | Path,
    out_run: str | Path,
    checkpoint_key: str | None = None,
) -> dict:
    """One iteration's DPO inside a KFP task: in this process on one device, or under
    ``torchrun`` with one process per GPU when the task has several (single-node multi-GPU).

    Returns:
        The ``dpo.json`` report of the trained policy run (``n_pairs``, ``seconds``...).
    """
    cfg = povid_iteration(cfg, iteration)  # a POVID stage's own epochs
    import torch  # lazy: torch only here and in training, after the launcher's argument checks

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus <= 1 or "LOCAL_RANK" in os.environ:
        dpo_step(cfg, iteration, policy_run, pairs_dir, out_run, checkpoint_key)
        return json.loads((Path(out_run) / "dpo.json").read_text())
    with tempfile.TemporaryDirectory(prefix="mmrlaif-dpo-") as tmp:
        config_file = Path(tmp) / "config.json"
        config_file.write_text(config_to_json(cfg))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += [f"--nproc-per-node={gpus}", "--module", "mmrlaif.steps.train"]
        command += ["--config-uri", str(config_file), "--iteration", str(iteration)]
        command += ["--policy", str(policy_run), "--pairs", str(pairs_dir), "--out", str(out_run)]
        command += ["--workdir", tmp]
        logger.info("DPO on %d GPUs: %s", gpus, " ".join(command))
        subprocess.run(command, check=True)
    return json.loads((Path(out_run) / "dpo.json").read_text())


def dpo_step(
    cfg: Config,
    iteration: int,
    policy_run: str | Path,
    pairs_dir: str | Path,
    out_run: str | Path,
    checkpoint_key: str | None = None,
) -> DPOResult:
    """One iteration's DPO from pipeline artifacts; the new policy goes to ``out_run/model``.

    When ``MMRLAIF_CHECKPOINT_DIR`` is set (a shared volume mounted by the pipeline's
    Kubernetes settings, or ``<run.output_dir>/checkpoints`` in a local run), checkpoints go
    to a folder of it named after the task, so that another attempt resumes instead of
    starting over: on Kubernetes ``checkpoint_key`` (the task's output URI, the same across
    retries of the task); in a local run the run key (``MMRLAIF_RUN_KEY``, the same when a
    killed run is rerun in its folder) with the iteration, the inputs and the config.
    """
    # lazy: torch and transformers load on training, after the launcher's argument checks
    from mmrlaif.training.dpo import dpo_stage

    checkpoint_dir = None
    root = os.environ.get(artifacts.CHECKPOINT_DIR_ENV)
    run_key = os.environ.get(artifacts.RUN_KEY_ENV)
    if run_key:
        checkpoint_key = json.dumps(
            [run_key, iteration, str(policy_run), str(pairs_dir), config_to_json(cfg)]
        )
    if root and checkpoint_key:
        digest = hashlib.sha256(checkpoint_key.encode()).hexdigest()[:16]
        checkpoint_dir = Path(root) / f"dpo-{digest}"
        logger.info("checkpoints in %s", checkpoint_dir)
    return dpo_stage(
        cfg.model,
        cfg.dpo,
        artifacts.model_dir(policy_run),
        artifacts.table(pairs_dir, "pairs"),
        out_run,
        artifacts.iteration_seed(cfg.run.seed, iteration),
        checkpoint_dir,
        cfg.pipeline.select_every,
    )


if __name__ == "__main__":
    raise SystemExit(main())
