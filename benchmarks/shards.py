"""Wall time of one iteration's sampling + labeling against the number of shards K.

Each shard runs in its own process, as each shard is its own pod on a cluster (and its own
subprocess under kfp.local), with the machine's cores shared out between the processes
(torch threads = cores // K): K = 1 is the baseline, measured in the same run. Every process
loads the policy itself (that start-up cost is part of what sharding pays). On this 2-core
machine expect the gain to saturate at K = 2; the K = 4 run also checks that the merged samples
and verdicts equal K = 1's.

    python benchmarks/shards.py                 # 64 prompts x 4 samples, K = 1, 2, 4
    python benchmarks/shards.py --prompts 128 --shards 1 2 4 8
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from mmrlaif.config import Config, TinyVLMConfig, WorldConfig, from_dict
from mmrlaif.io import read_rows
from mmrlaif.models.load import save_model
from mmrlaif.steps.label import label_step
from mmrlaif.steps.merge import merge_step
from mmrlaif.steps.sample import sample_step
from mmrlaif.toyworld import build_world
from mmrlaif.toyworld.tiny import build_tiny_vlm


def _shard(args: tuple[dict, str, str, str, int, int]) -> float:
    """Sample and label one shard in this process; returns its wall seconds."""
    data, policy, world, out, shard, threads = args
    torch.set_num_threads(threads)
    cfg = from_dict(Config, data)
    start = time.perf_counter()
    sample_step(cfg, 1, policy, world, Path(out) / f"samples-{shard}", shard)
    label_step(cfg, policy, policy, world, Path(out) / f"samples-{shard}", Path(out) / f"f-{shard}")
    return time.perf_counter() - start


def run(data: dict, policy: Path, world: Path, out: Path, shards: int) -> float:
    """All shards of one iteration, each in its own process, then the merge; wall seconds."""
    data = {**data, "pipeline": {"shards": shards}}
    start = time.perf_counter()
    threads = max(1, (os.cpu_count() or 1) // shards)  # the machine's cores, shared out
    jobs = [(data, str(policy), str(world), str(out), k, threads) for k in range(shards)]
    with ProcessPoolExecutor(max_workers=shards) as pool:
        list(pool.map(_shard, jobs))
    merge_step(
        [out / f"samples-{k}" for k in range(shards)],
        [out / f"f-{k}" for k in range(shards)],
        out / "samples",
        out / "feedback",
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mmrlaif-shards-"))
    world_cfg = WorldConfig(seed=3, n_train=16, n_align=args.prompts, n_eval=2, n_val=2)
    world = build_world(world_cfg, root / "world").root
    model, processor = build_tiny_vlm(TinyVLMConfig(), world_cfg.image_size, seed=0)
    save_model(model, processor, root / "policy" / "model")
    data = {
        "run": {"output_dir": str(root)},
        "sampling": {"n": args.samples, "max_new_tokens": 24, "prompts_per_batch": 8},
    }
    times = {}
    for k in args.shards:
        times[k] = run(data, root / "policy", world, root / f"k{k}", k)
        print(f"K={k}: {times[k]:6.1f} s", flush=True)
    base = times[args.shards[0]]
    print(f"\nbaseline K={args.shards[0]}: {base:.1f} s ({args.prompts} prompts x {args.samples})")
    for k, seconds in times.items():
        print(f"K={k}: {seconds:6.1f} s   speed-up x{base / seconds:4.2f}")
    first, last = args.shards[0], args.shards[-1]
    for table in ("samples", "feedback"):
        a = read_rows(root / f"k{first}" / table / f"{table}.parquet")
        b = read_rows(root / f"k{last}" / table / f"{table}.parquet")
        same = [{**r, "policy": None} for r in a] == [{**r, "policy": None} for r in b]
        print(f"{table}: K={first} and K={last} identical: {same} ({len(a)} rows)")


if __name__ == "__main__":
    main()
