"""The ``base-policy`` component's step: the pipeline's starting policy."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from mmrlaif.config import Config
from mmrlaif.continual import POLICY_SOURCE
from mmrlaif.continual.source import resolve_policy
from mmrlaif.io import read_rows, write_json
from mmrlaif.models.load import load_vlm, save_model
from mmrlaif.toyworld import WorldPaths
from mmrlaif.tracking.uri import tracking_uri
from mmrlaif.training.sft import SFTResult, sft_stage, train_sft


def base_policy_step(cfg: Config, world_dir: str | Path, out_run: str | Path) -> SFTResult:
    """The pipeline's starting policy, saved under ``out_run/model``.

    With ``model.name_or_path: null`` the tiny VLM is built and fine-tuned on the world's SFT
    table; otherwise the named model (a hub id, a folder, an ``s3://`` folder or a registry
    reference such as ``models:/<name>@champion``) is resolved, loaded and saved as is (the
    pipeline then aligns it), and what it resolved to is written to ``policy_source.json``.
    A tiny twin (``twin:<family>``) is fine-tuned on the world's SFT table first.
    """
    out_run = Path(out_run)
    if cfg.model.name_or_path is None:
        world = WorldPaths(Path(world_dir))
        return sft_stage(cfg.model, cfg.sft, cfg.world.image_size, world.sft, out_run, cfg.run.seed)
    start = time.perf_counter()
    downloads = out_run / ".source.tmp"
    shutil.rmtree(downloads, ignore_errors=True)
    resolved = resolve_policy(cfg.model.name_or_path, tracking_uri(cfg), downloads)
    model, processor = load_vlm(
        resolved.path, cfg.model.dtype, cfg.model.trust_remote_code, family=cfg.model.family
    )
    shutil.rmtree(downloads, ignore_errors=True)
    write_json(resolved.to_dict(), out_run / POLICY_SOURCE)
    if resolved.kind == "twin":
        # A random twin stands in for an instruction-tuned checkpoint: fine-tuned on the
        # world's SFT split (sft.*) as the project's own tiny VLM is, it describes images in
        # the words the world's lexicon and labeler know.
        world = WorldPaths(Path(world_dir))
        return train_sft(
            model, processor, read_rows(world.sft), cfg.sft, out_run, cfg.run.seed, cfg.model.family
        )
    tmp = out_run / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, processor, tmp)
    tmp.rename(out_run / "model")
    return SFTResult(out_run / "model", [], 0, {}, time.perf_counter() - start)
