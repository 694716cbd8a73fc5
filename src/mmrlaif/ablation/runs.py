"""The ablation's runs: each seed's base policy fine-tuned once, the world's strong labeler
fine-tuned once, then every (variant, seed) as its own ``mmrlaif run`` process."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from mmrlaif.ablation.results import AblationRun, write_results
from mmrlaif.ablation.variants import checker_config, needs_checker, variant_config
from mmrlaif.artifacts import SUMMARY_FILE
from mmrlaif.config import Config, ConfigError, config_to_yaml, from_dict, to_dict
from mmrlaif.evaluation.metrics import headline_of
from mmrlaif.toyworld import build_world

logger = logging.getLogger(__name__)

#: Each run's (and each base's) configuration, in its folder.
CONFIG_FILE = "config.yaml"


class AblationError(RuntimeError):
    """Some runs of an ablation failed (the others' results are written)."""


def run_ablation(
    cfg: Config,
    variants: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | Path,
    jobs: int = 1,
) -> list[AblationRun]:
    """Run every variant for every seed through the local pipeline, then write the results.

    Each run is its own ``mmrlaif run`` process (its config in ``<run>/config.yaml``, its
    output in ``<run>/ablation.log``), ``jobs`` at a time, each given ``cpus / jobs`` threads.
    With ``model.name_or_path: null`` each seed's base policy is fine-tuned once
    (``<out>/seed<k>/base``) and every variant of that seed starts from it; the variants that
    label with the strong labeler share one, fine-tuned once for the world (``<out>/checker``,
    :data:`~mmrlaif.ablation.variants.CHECKER`) and evaluated on the eval split. A run whose
    folder already holds a finished run of the same config is reused, so an interrupted
    ablation resumes where it stopped.

    Returns:
        The runs, in order (seed-major).

    Raises:
        ConfigError: A strong-labeler variant for a preset that names its model (the strong
            labeler is the toy world's; name a real one in ``labeling.labeler_name_or_path``).
        AblationError: Naming each failed run and its log, after writing the others' results.
    """
    out_dir = Path(out_dir)
    strong = [v for v in variants if needs_checker(v)]
    if strong and cfg.model.name_or_path is not None:
        raise ConfigError(
            f"variants {', '.join(strong)} label with the toy world's strong labeler, which "
            "needs model.name_or_path: null (the tiny VLM)"
        )
    env = dict(os.environ)
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    world = None
    if cfg.model.name_or_path is None:  # the bases' SFT data (the runs build the same world)
        world = build_world(cfg.world, out_dir / "world").root
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        bases: dict[int, Future[Path | None]] = {}
        for seed in seeds:  # queued first: a run waits only on a base already being trained
            bases[seed] = pool.submit(_base_policy, cfg, seed, out_dir, world, env)
        checker = pool.submit(_checker, cfg, out_dir, env) if strong else None
        # per seed the longest runs first, so that short ones fill the end (fewer idle cores)
        cost = {v: expected_cost(variant_config(cfg, v, 0, out_dir, None)) for v in variants}
        submitted = {
            (seed, variant): pool.submit(
                _variant_run,
                cfg,
                variant,
                seed,
                out_dir,
                bases[seed],
                checker if needs_checker(variant) else None,
                env,
            )
            for seed in seeds
            for variant in sorted(variants, key=lambda v: -cost[v])
        }
    futures = {(seed, v): submitted[seed, v] for seed in seeds for v in variants}
    runs, failed = [], []
    for (seed, variant), future in futures.items():
        try:
            runs.append(future.result())
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            failed.append(f"seed {seed} {variant}: {exc}")
    checked = None
    if checker is not None and checker.exception() is None:
        checked = headline_of(json.loads((checker.result().parent / CHECKER_EVAL).read_text()))
    if runs:
        write_results(runs, out_dir, checked)
    if failed:
        raise AblationError(f"{len(failed)} of {len(futures)} runs failed: " + "; ".join(failed))
    return runs


def expected_cost(cfg: Config) -> float:
    """A run's relative cost, to order runs (not a time): per iteration, its samples per prompt
    (RLAIF-V), 16 for POVID pairs (one answer per prompt on noise, ~2 pairs per prompt to train
    on) and 8 for the fixed work (DPO on RLAIF-V pairs, evaluation, tasks)."""
    rlaifv = cfg.pipeline.method == "rlaifv"
    povid = not rlaifv or cfg.pairs.add_povid
    per_iteration = (cfg.sampling.n if rlaifv else 0) + (16 if povid else 0) + 8
    return cfg.pipeline.iterations * per_iteration


def _cli(args: Sequence[str], log: Path, env: Mapping[str, str]) -> None:
    """``mmrlaif <args>`` in its own process, its output to ``log``.

    Raises:
        subprocess.CalledProcessError: Naming the log, when it fails.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "mmrlaif.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            check=False,
        )
    if done.returncode:
        raise subprocess.CalledProcessError(done.returncode, f"mmrlaif {args[0]} (log: {log})")


def _base_policy(
    cfg: Config, seed: int, out_dir: Path, world: Path | None, env: Mapping[str, str]
) -> Path | None:
    """This seed's fine-tuned base policy folder (``None``: the preset names its model)."""
    if world is None:
        return None
    # only what the SFT reads: a changed DPO or labeling setting reuses the bases
    data = to_dict(variant_config(cfg, "iterative", seed, out_dir, None))
    data = {key: data[key] for key in ("run", "world", "model", "sft")}
    data["run"]["output_dir"] = str(out_dir / f"seed{seed}" / "base")
    return _fine_tune_once(from_dict(Config, data), world, env, f"seed {seed} base policy")


#: The strong labeler's figures on the eval split, in its folder.
CHECKER_EVAL = "eval.json"


def _checker(cfg: Config, out_dir: Path, env: Mapping[str, str]) -> Path:
    """The world's strong labeler, fine-tuned on its own copy of the world (the same images,
    more yes/no questions), its eval-split figures in ``<folder>/eval.json``; returns its model
    folder."""
    ccfg = checker_config(cfg, out_dir)
    folder = Path(ccfg.run.output_dir)
    world = build_world(ccfg.world, folder.parent / "checker_world").root
    model = _fine_tune_once(ccfg, world, env, "strong labeler")
    if not (folder / CHECKER_EVAL).is_file():
        config = str(folder / CONFIG_FILE)
        args = ["evaluate", "--config", config, "--model", str(model), "--world", str(world)]
        _cli([*args, "--out", str(folder / CHECKER_EVAL)], folder / "evaluate.log", env)
    return model


def _fine_tune_once(ccfg: Config, world: Path, env: Mapping[str, str], what: str) -> Path:
    """``mmrlaif sft`` of ``ccfg`` on ``world`` into ``ccfg.run.output_dir``, unless that
    folder holds a model fine-tuned with the same config; returns the model folder."""
    folder = Path(ccfg.run.output_dir)
    model = folder / "model"
    text = config_to_yaml(ccfg)
    if (model / "config.json").is_file() and _same_config(folder, text):
        logger.info("ablation: %s reused from %s", what, model)
        return model
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / CONFIG_FILE).write_text(text)
    logger.info("ablation: %s (SFT)", what)
    config = str(folder / CONFIG_FILE)
    args = ["sft", "--config", config, "--world", str(world), "--out", str(folder)]
    _cli(args, folder / "ablation.log", env)
    return model


def _variant_run(
    cfg: Config,
    variant: str,
    seed: int,
    out_dir: Path,
    base: Future[Path | None],
    checker: Future[Path] | None,
    env: Mapping[str, str],
) -> AblationRun:
    labeler = checker.result() if checker is not None else None
    vcfg = variant_config(cfg, variant, seed, out_dir, base.result(), labeler)
    folder = Path(vcfg.run.output_dir)
    text = config_to_yaml(vcfg)
    done = folder / "ablation_run.json"
    if done.is_file() and _same_config(folder, text) and (folder / SUMMARY_FILE).is_file():
        logger.info("ablation: %s, seed %d reused", variant, seed)
        seconds = json.loads(done.read_text())["seconds"]
    else:
        if not _same_config(folder, text):  # same config: resume the killed run in it
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            (folder / CONFIG_FILE).write_text(text)
        logger.info("ablation: %s, seed %d", variant, seed)
        start = time.perf_counter()
        _cli(["run", "--config", str(folder / CONFIG_FILE)], folder / "ablation.log", env)
        seconds = round(time.perf_counter() - start, 1)
        done.write_text(json.dumps({"seconds": seconds}))
    summary = folder / SUMMARY_FILE
    if not summary.is_file():
        raise FileNotFoundError(f"no run summary {summary}")
    return _run_of(variant, seed, json.loads(summary.read_text()), seconds, vcfg)


def _same_config(folder: Path, text: str) -> bool:
    path = folder / CONFIG_FILE
    return path.is_file() and path.read_text() == text


def _run_of(variant: str, seed: int, summary: Mapping, seconds: float, cfg: Config) -> AblationRun:
    entries = summary["iterations"]
    return AblationRun(
        variant,
        seed,
        [e["headline"] for e in entries],
        [int(e.get("pairs") or 0) for e in entries[1:]],
        seconds,
        cfg.run.output_dir,
    )
