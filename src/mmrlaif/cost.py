"""What a run will cost, before it is submitted: the work of each stage and its GPU-hours.

Pure arithmetic on a :class:`~mmrlaif.config.Config` (no I/O, no kfp, no torch). The work
follows the pipeline's shape: every iteration samples, labels, builds pairs and trains DPO on
the same prompts; the base policy and every iteration's trained policy are evaluated. Time
comes from the per-GPU throughputs of the config's ``estimate:`` section
(:class:`~mmrlaif.config.EstimateConfig`) and the GPUs each stage's tasks hold:

* Sampling, a local labeler and evaluation put the model on one device (``load_vlm``), so a
  task's time is its work over one GPU's throughput, and it holds
  ``kubernetes.gpu.accelerator_limit`` GPUs for that time; ``pipeline.shards`` parallel tasks
  share the work (same GPU-hours, less wall time).
* An ``openai`` labeler and an ``llm_endpoint`` splitter do their work on their servers'
  GPUs (``estimate.labeler_server_gpus`` / ``divide_server_gpus``), while the label task waits
  holding its own GPUs.
* DPO is data-parallel over ``kubernetes.trainjob`` nodes x GPUs, else ``kubernetes.train``
  (else ``gpu``) ``accelerator_limit``; its optimizer steps follow the trainer's own rule.

A stage whose tasks hold no accelerator runs on CPU: it has no GPU-hours, and its time is not
estimated (the figures are GPU figures).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from mmrlaif.config import Config, ConfigError

logger = logging.getLogger(__name__)

#: The project's DPO trainer defaults that set the step count (``DEFAULT_DPO_ARGS`` of
#: ``mmrlaif.training.dpo``, which imports torch; a test keeps the two equal).
DPO_STEP_DEFAULTS: dict[str, Any] = {
    "num_train_epochs": 4,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "max_steps": -1,
}

#: Published sizes of the field's benchmarks: items per file (POPE: per split).
BENCHMARK_ITEMS: dict[str, int] = {"pope": 3000, "object_halbench": 300, "mmhal": 96}

#: AMBER: generative queries come first in ``query_all.json`` (1,004), then 14,216
#: discriminative ones (existence, attribute, relation).
AMBER_GENERATIVE, AMBER_DISCRIMINATIVE = 1004, 14216

H = 3600  # seconds per hour


@dataclass(frozen=True)
class StageEstimate:
    """One stage's work and cost.

    Attributes:
        name: ``sampling``, ``labeling``, ``dpo`` or ``evaluation``.
        work: Counts of one run of the stage (``samples``, ``tokens``, ``questions``...).
        runs: Times the stage runs in the pipeline (evaluation: once more, for the base).
        gpus: GPUs its tasks hold at once (0: CPU tasks).
        server_gpus: GPUs of model servers it calls (0: none).
        gpu_hours: GPU-hours of one run (held by its tasks plus used on servers).
        wall_hours: Hours of one run (``None``: CPU work, not estimated).
    """

    name: str
    work: dict[str, int]
    runs: int
    gpus: int
    server_gpus: int = 0
    gpu_hours: float = 0.0
    wall_hours: float | None = 0.0

    @property
    def total_gpu_hours(self) -> float:
        """GPU-hours over all runs."""
        return self.gpu_hours * self.runs

    @property
    def total_wall_hours(self) -> float | None:
        """Hours over all runs (``None`` when not estimated)."""
        return None if self.wall_hours is None else self.wall_hours * self.runs


@dataclass(frozen=True)
class Estimate:
    """The expected cost of a run.

    Attributes:
        method: ``rlaifv`` or ``povid``.
        iterations: ``pipeline.iterations``.
        prompts: Prompts per iteration.
        prompts_source: Where that count comes from (``world.n_align``, ``data.limit``...).
        upper_bound: The count is a cap (``data.limit``), the true one may be lower.
        stages: Sampling, labeling, DPO and evaluation.
        assumptions: The figures and rules used, one line each.
    """

    method: str
    iterations: int
    prompts: int
    prompts_source: str
    upper_bound: bool
    stages: tuple[StageEstimate, ...]
    assumptions: tuple[str, ...] = field(default=())

    @property
    def total_gpu_hours(self) -> float:
        """GPU-hours of the whole run."""
        return sum(s.total_gpu_hours for s in self.stages)

    @property
    def total_wall_hours(self) -> float | None:
        """Hours of the whole run, stages one after another (``None``: some not estimated)."""
        walls = [s.total_wall_hours for s in self.stages]
        return None if any(w is None for w in walls) else sum(walls)

    def stage(self, name: str) -> StageEstimate:
        """The stage called ``name``."""
        return next(s for s in self.stages if s.name == name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, totals included."""
        out = asdict(self)
        for stage, data in zip(self.stages, out["stages"], strict=True):
            data["total_gpu_hours"] = stage.total_gpu_hours
            data["total_wall_hours"] = stage.total_wall_hours
        out["assumptions"] = list(self.assumptions)
        out["total_gpu_hours"] = self.total_gpu_hours
        out["total_wall_hours"] = self.total_wall_hours
        return out


def estimate_run(config: Config, prompts: int | None = None) -> Estimate:
    """Estimate the work and GPU-hours of running ``config``'s pipeline.

    Args:
        config: The run's configuration; its ``estimate:`` section holds the figures.
        prompts: Prompts per iteration, overriding what the config says (needed when they
            come from a file of unknown size without ``data.limit``).

    Returns:
        Per stage the work and GPU-hours of one run of it, how often it runs, and totals.

    Raises:
        ConfigError: The prompt count is unknown, or ``prompts`` is not positive.
    """
    count, source, upper = _prompts(config, prompts)
    fig = config.estimate
    notes = [f"prompts per iteration: {count:,} from {source}" + (" (an upper bound)" * upper)]
    gpu = config.kubernetes.gpu.accelerator_limit
    if config.pipeline.method == "povid":
        sampling, labeling, pairs = _povid_generation(config, count, notes)
    else:
        sampling, labeling, pairs = _rlaifv_generation(config, count, notes)
    stages = (sampling, labeling, _dpo(config, pairs, notes), _evaluation(config, notes))
    notes += [
        f"estimate.{name} = {value:g}" for name, value in asdict(fig).items() if "per_s" in name
    ]
    if any(s.wall_hours is None for s in stages):
        notes.append("stages without accelerators run on CPU: no GPU-hours, time not estimated")
    if gpu > 1:
        notes.append("sampling, labeling and evaluation use one device of each task's GPUs")
    logger.debug("estimate: %s", stages)
    return Estimate(
        method=config.pipeline.method,
        iterations=config.pipeline.iterations,
        prompts=count,
        prompts_source=source,
        upper_bound=upper,
        stages=stages,
        assumptions=tuple(notes),
    )


def _prompts(config: Config, override: int | None) -> tuple[int, str, bool]:
    data = config.data
    if override is not None:
        if override < 1:
            raise ConfigError(f"--prompts must be >= 1, got {override}")
        return override, "--prompts", False
    if data.align_prompts or data.prompts_prefix:
        key = "data.align_prompts" if data.align_prompts else "data.prompts_prefix"
        if data.limit is None:
            raise ConfigError(
                f"{key}: the number of prompts is unknown here; set data.limit or pass --prompts N"
            )
        if data.prompts_prefix:  # new prompts up to the limit, plus the replayed share
            replay = round(data.replay_fraction * data.limit)
            return data.limit + replay, "data.limit + data.replay_fraction", True
        return data.limit, "data.limit", True
    return config.world.n_align, "world.n_align (the toy world's align split)", False


def _parallel_shards(config: Config) -> int:
    # pipeline.shards / max_parallel_shards: sharded sampling and labeling (RLAIF-V only)
    shards = getattr(config.pipeline, "shards", 1)
    cap = getattr(config.pipeline, "max_parallel_shards", 0)
    return min(shards, cap) if cap else shards


class _Part(NamedTuple):
    """Work of a stage: GPU-seconds on one GPU, and the GPUs of the server doing it (0: done
    on one device of the stage's own task)."""

    seconds: float
    server_gpus: int = 0


def _stage(
    config: Config, name: str, work: dict[str, int], parts: list[_Part], parallel: int = 1
) -> StageEstimate:
    """A GPU-task stage doing ``parts`` one after another, in ``parallel`` tasks at once.

    Local work is shared by the parallel tasks; server work is not (they all wait on the same
    servers), and the tasks hold their GPUs while they wait.
    """
    gpu = config.kubernetes.gpu.accelerator_limit
    runs = config.pipeline.iterations + (name == "evaluation")  # the base policy's too
    server_s = sum(p.seconds for p in parts if p.server_gpus)
    servers = sum(p.server_gpus for p in parts if p.server_gpus and p.seconds)
    local_s = sum(p.seconds for p in parts if not p.server_gpus)
    if not gpu and local_s:  # CPU tasks: the GPU figures say nothing of their time
        return StageEstimate(name, work, runs, 0, servers, server_s / H, None)
    wall_s = local_s / parallel + sum(p.seconds / p.server_gpus for p in parts if p.server_gpus)
    gpu_h = (wall_s * gpu * parallel + server_s) / H
    return StageEstimate(name, work, runs, gpu * parallel, servers, gpu_h, wall_s / H)


def _server_note(parts: list[_Part], stage: StageEstimate) -> str:
    on_servers = sum(p.seconds for p in parts if p.server_gpus) / H
    return (
        f"{stage.name}: {on_servers:.3g} GPU-h/run on {stage.server_gpus} model server GPU(s) "
        f"(estimate.*_server_gpus, assumed busy), while its task(s) hold {stage.gpus} GPU(s) "
        f"waiting: {stage.gpu_hours - on_servers:.3g} GPU-h/run"
    )


def _rlaifv_generation(
    config: Config, prompts: int, notes: list[str]
) -> tuple[StageEstimate, StageEstimate, int]:
    fig, lab, smp = config.estimate, config.labeling, config.sampling
    parallel = _parallel_shards(config)
    samples = prompts * smp.n
    per_answer = min(fig.answer_tokens, smp.max_new_tokens)
    tokens = round(samples * per_answer)
    on_server = fig.sampling_server_gpus if smp.backend == "openai" else 0
    parts = [_Part(tokens / fig.sampling_tokens_per_s, on_server)]
    work = {"prompts": prompts, "samples": samples, "tokens": tokens}
    sampling = _stage(config, "sampling", work, parts, parallel)
    notes.append(
        f"sampling: {smp.n} samples per prompt x {per_answer:g} tokens "
        f"(estimate.answer_tokens, capped by sampling.max_new_tokens); {parallel} task(s) at once"
    )
    if sampling.server_gpus:
        notes.append(_server_note(parts, sampling))
    claims = round(samples * fig.claims_per_answer)
    notes.append(f"labeling: {fig.claims_per_answer:g} claims = yes/no questions per answer")
    # the splitter (llm extractor / question builder), then the labeler, one after the other
    parts = []
    if "llm" in (lab.extractor, lab.question_builder):
        on_server = fig.divide_server_gpus if lab.llm_endpoint else 0
        parts.append(_Part(claims / fig.divide_claims_per_s, on_server))
    on_server = fig.labeler_server_gpus if lab.labeler == "openai" else 0
    parts.append(_Part(claims / fig.labeler_questions_per_s, on_server))
    work = {"claims": claims, "questions": claims}
    labeling = _stage(config, "labeling", work, parts, parallel)
    if labeling.server_gpus:
        notes.append(_server_note(parts, labeling))
    pair_rate = min(fig.pairs_per_prompt, config.pairs.max_pairs_per_prompt)
    if pair_rate < fig.pairs_per_prompt:
        notes.append("estimate.pairs_per_prompt capped by pairs.max_pairs_per_prompt")
    notes.append(f"pairs: {pair_rate:g} per prompt (estimate.pairs_per_prompt)")
    return sampling, labeling, round(prompts * pair_rate)


def _povid_generation(
    config: Config, prompts: int, notes: list[str]
) -> tuple[StageEstimate, StageEstimate, int]:
    fig, povid = config.estimate, config.povid
    # an online noise rejection is built inside DPO (one arg-max pass per noise pair and
    # epoch, two with the reference's own tokens): no answer is generated here
    offline = "povid_noise" in povid.sources and povid.noise_rejection == "offline"
    answers = prompts if offline else 0
    per_answer = min(fig.answer_tokens, povid.max_new_tokens)
    tokens = round(answers * per_answer)
    work = {"prompts": prompts, "samples": answers, "tokens": tokens}
    sampling = _stage(config, "sampling", work, [_Part(tokens / fig.sampling_tokens_per_s)])
    rewrites = prompts if "povid_text" in povid.sources and povid.injector == "llm" else 0
    # an LLM rewrite of one answer is taken to cost as much as splitting it into claims
    on_server = fig.divide_server_gpus if povid.llm_endpoint else 0
    parts = [_Part(rewrites * fig.claims_per_answer / fig.divide_claims_per_s, on_server)]
    labeling = _stage(config, "labeling", {"rewrites": rewrites}, parts)
    if labeling.server_gpus:
        notes.append(_server_note(parts, labeling))
    noise = (
        f"one noised-image answer per prompt ({per_answer:g} tokens)"
        if offline
        else "noise rejections built online in DPO (not in its figure)"
    )
    notes.append(
        f"POVID: {noise}, {len(povid.sources)} pair(s) per prompt ({', '.join(povid.sources)}); "
        "an LLM hallucination rewrite costs as much as splitting one answer into claims"
    )
    return sampling, labeling, prompts * len(povid.sources)


def _dpo(config: Config, pairs: int, notes: list[str]) -> StageEstimate:
    k8s = config.kubernetes
    if k8s.trainjob is not None:
        gpus, where = k8s.trainjob.num_nodes * k8s.trainjob.gpus_per_node, "kubernetes.trainjob"
    else:
        gpus = (k8s.train or k8s.gpu).accelerator_limit
        where = "kubernetes.train" if k8s.train else "kubernetes.gpu"
    args = DPO_STEP_DEFAULTS | {
        k: v for k, v in config.dpo.trainer.items() if k in DPO_STEP_DEFAULTS
    }
    epochs, batch = float(args["num_train_epochs"]), int(args["per_device_train_batch_size"])
    accumulation, max_steps = int(args["gradient_accumulation_steps"]), int(args["max_steps"])
    stages = config.povid.stages if config.pipeline.method == "povid" else ()
    if stages:  # each POVID stage trains its own epochs: per run, their mean
        epochs = sum(s.num_train_epochs for s in stages) / len(stages)
        notes.append(f"dpo: povid.stages' epochs, {epochs:g} per iteration on average")
    world = max(gpus, 1)
    if pairs == 0:
        steps, passes = 0, 0.0
    else:  # transformers' Trainer: batches per process, then optimizer steps per epoch
        batches = math.ceil(pairs / (batch * world))
        per_epoch = max(math.ceil(batches / accumulation), 1)
        steps = max_steps if max_steps > 0 else math.ceil(epochs * per_epoch)
        passes = steps * batch * world * accumulation if max_steps > 0 else pairs * epochs
    devices = f"{gpus} GPU(s) ({where})" if gpus else "1 CPU process"
    notes.append(
        f"dpo: {epochs:g} epochs, {batch} pairs per device x {accumulation} accumulation x "
        f"{devices} per step" + (f" (dpo.trainer.max_steps {max_steps})" * (max_steps > 0))
    )
    gpu_s = passes / config.estimate.dpo_pairs_per_s
    gpu_h, wall = (gpu_s / H, gpu_s / gpus / H) if gpus else (0.0, None if passes else 0.0)
    work = {"pairs": pairs, "steps": steps, "pair_passes": round(passes)}
    return StageEstimate("dpo", work, config.pipeline.iterations, gpus, 0, gpu_h, wall)


def _evaluation(config: Config, notes: list[str]) -> StageEstimate:
    ev, world, bench, fig = config.eval, config.world, config.eval.benchmarks, config.estimate

    def head(n: int, limit: int | None) -> int:
        return n if limit is None else min(n, limit)

    n_eval = head(world.n_eval, ev.limit)
    described = n_eval + head(world.n_val, ev.limit)
    yesno = n_eval * world.pope_per_image * len(ev.pope_categories)
    per_answer = min(fig.eval_answer_tokens, ev.max_new_tokens)
    tokens = described * per_answer
    bench_described = bench_yesno = 0
    for name in bench.run:
        if name == "amber":  # query_all.json, query_generative.json, query_discriminative*
            generative = 0 if "discriminative" in bench.amber_query_file else AMBER_GENERATIVE
            other = 0 if "generative" in bench.amber_query_file else AMBER_DISCRIMINATIVE
            items = head(generative + other, bench.limit)
            bench_described += min(items, generative)
            bench_yesno += items - min(items, generative)
        elif name == "pope":
            bench_yesno += head(BENCHMARK_ITEMS["pope"], bench.limit) * len(bench.pope_splits)
        else:
            bench_described += head(BENCHMARK_ITEMS[name], bench.limit)
    bench_per_answer = min(fig.eval_answer_tokens, bench.max_new_tokens)
    tokens += bench_described * bench_per_answer
    described += bench_described
    yesno += bench_yesno
    benchmarks = (
        f"{', '.join(bench.run)} at published sizes (eval.benchmarks.limit {bench.limit}), "
        f"{bench_per_answer:g} tokens per description"
        if bench.run
        else "no benchmarks"
    )
    notes.append(
        f"evaluation: the base policy and each iteration's; toy eval/val splits "
        f"({world.n_eval}/{world.n_val} images, eval.limit {ev.limit}) and their POPE, "
        f"{per_answer:g} tokens per description (estimate.eval_answer_tokens, capped by "
        f"eval.max_new_tokens); {benchmarks}"
    )
    seconds = tokens / fig.eval_tokens_per_s + yesno / fig.eval_yesno_per_s
    work = {"descriptions": described, "yes_no": yesno, "tokens": round(tokens)}
    return _stage(config, "evaluation", work, [_Part(seconds)])
