"""The one iteration skeleton of both methods: start (world, base policy, its evaluation,
tracking), N unrolled iterations of pairs -> train DPO -> evaluate -> select -> log, then
register and finish. A method supplies only its pairs sub-graph (:class:`Method`).

(No ``from __future__ import annotations`` here: KFP reads the pipeline function's annotations
as types.)
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kfp import dsl
from kfp.dsl import Artifact

from mmrlaif.artifacts import CHECKPOINT_DIR_ENV, RUN_KEY_ENV
from mmrlaif.components.base_policy import base_policy
from mmrlaif.components.evaluate import evaluate
from mmrlaif.components.select import select_policy
from mmrlaif.components.track import finish_tracking, log_base, register, start_tracking
from mmrlaif.components.train import train_dpo, train_dpo_trainjob
from mmrlaif.components.world import prepare_world
from mmrlaif.config import Config
from mmrlaif.config.shape import shape_text
from mmrlaif.pipelines.kube import configure_all
from mmrlaif.pipelines.tasks import defined_tasks, kind_of


@dataclass(frozen=True)
class LocalRun:
    """What a local run gives its tasks (see :func:`mmrlaif.pipelines.build.run_local`).

    Attributes:
        run_key: The run's key, the same when a killed run is rerun in its folder: an
            environment variable of every cached task, so part of its cache key.
        checkpoint_dir: Root of the DPO checkpoints, outside any one task's folder.
    """

    run_key: str
    checkpoint_dir: str


def configure_local(local_run: LocalRun) -> None:
    """Cache every task of the pipeline being defined but the tracking ones, under the run's
    key (call it at the end of the pipeline function's body).

    Raises:
        ValueError: A task's component is not declared (:data:`mmrlaif.pipelines.tasks.TASKS`).
    """
    for task in defined_tasks("configure_local"):
        if kind_of(task.component_spec.name).tracking:
            continue
        task.set_caching_options(True)
        task.set_env_variable(RUN_KEY_ENV, local_run.run_key)
        task.set_env_variable(CHECKPOINT_DIR_ENV, local_run.checkpoint_dir)


@dataclass
class Start:
    """Handles of the pipeline's start: the world, the base policy and its report, tracking."""

    world: Any
    policy: Any
    report: Any
    run_id: Any
    history: Any


@dataclass
class Selected:
    """Handles of one iteration's train -> evaluate -> select."""

    trained: Any
    candidate_report: Any
    policy: Any
    report: Any


def start(config: Any, run_date: Any, cfg: Config) -> Start:
    """World, starting policy, its evaluation, the parent run, iteration 0 logged."""
    world = prepare_world(config=config, shape=shape_text(cfg)).set_display_name("prepare world")
    if cfg.data.align_prompts or cfg.data.prompts_prefix:
        # prompts read from storage change behind the same URI (new partitions, a moved
        # watermark): never reuse a cached copy
        world.set_caching_options(False)
    base = base_policy(config=config, world=world.outputs["world"])
    base.set_display_name("base policy")
    if (cfg.model.name_or_path or "").startswith(("models:/", "s3://")):
        base.set_caching_options(False)  # an alias moves, an S3 folder is overwritten
    base_eval = evaluate(config=config, policy=base.outputs["policy"], world=world.outputs["world"])
    base_eval.set_display_name("evaluate base policy").set_caching_options(False)
    run = start_tracking(config=config, run_date=run_date).set_display_name("start tracking")
    run.set_caching_options(False)
    logged = log_base(
        config=config,
        run_id=run.output,
        report=base_eval.outputs["report"],
        world=world.outputs["world"],
        policy=base.outputs["policy"],
    )
    logged.set_display_name("log base policy").set_caching_options(False)
    return Start(
        world.outputs["world"],
        base.outputs["policy"],
        base_eval.outputs["report"],
        run.output,
        logged.output,
    )


def train_and_select(
    config: Any, cfg: Config, iteration: int, policy: Any, report: Any, pairs: Any, world: Any
) -> Selected:
    """DPO from ``policy`` on ``pairs``, evaluate, and carry forward the better policy."""
    if cfg.kubernetes.trainjob is None:
        trained = train_dpo(config=config, iteration=iteration, policy=policy, pairs=pairs)
        trained.set_display_name(f"iteration {iteration}: train DPO")
    else:  # multi-node: this task launches a Kubeflow Trainer TrainJob and follows it
        trained = train_dpo_trainjob(
            config=config,
            iteration=iteration,
            job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            policy=policy,
            pairs=pairs,
        )
        trained.set_display_name(f"iteration {iteration}: train DPO (TrainJob)")
    evaluated = evaluate(config=config, policy=trained.outputs["trained"], world=world)
    evaluated.set_display_name(f"iteration {iteration}: evaluate").set_caching_options(False)
    selected = select_policy(
        config=config,
        trained=trained.outputs["trained"],
        trained_report=evaluated.outputs["report"],
        incumbent=policy,
        incumbent_report=report,
    )
    selected.set_display_name(f"iteration {iteration}: select").set_caching_options(False)
    return Selected(
        trained.outputs["trained"],
        evaluated.outputs["report"],
        selected.outputs["policy"],
        selected.outputs["report"],
    )


def finish(config: Any, s: Start, history: Any, policy: Any, report: Any) -> Any:
    """Register the final policy (through the promotion gate), then close the parent run;
    returns the summary artifact."""
    run_id = s.run_id
    registered = register(
        config=config, run_id=run_id, history=history, policy=policy, report=report, world=s.world
    )
    registered.set_display_name("register and gate").set_caching_options(False)
    done = finish_tracking(
        config=config, run_id=run_id, history=history, registration=registered.output
    )
    done.set_display_name("finish tracking").set_caching_options(False)
    return done.outputs["summary"]


@dataclass(frozen=True)
class Pairs:
    """What a method's pairs sub-graph gives an iteration.

    Attributes:
        pairs: The pairs table output (DPO's input).
        log_inputs: Further inputs of the method's log component (e.g. samples, feedback).
    """

    pairs: Any
    log_inputs: dict[str, Any]


@dataclass(frozen=True)
class Method:
    """A method's part of the pipeline.

    Attributes:
        name: Pipeline name suffix (``rlaifv``, ``povid``).
        description: The pipeline's description.
        pairs: ``(config, cfg, iteration, policy, start) -> Pairs``: the iteration's pairs
            sub-graph, from the iteration's starting policy.
        log: The method's log component, called with the iteration's outputs, ``pairs`` and
            ``Pairs.log_inputs``.
    """

    name: str
    description: str
    pairs: Callable[[Any, Config, int, Any, Start], Pairs]
    log: Callable[..., Any]


def method_pipeline(
    method: Method,
    cfg: Config,
    config_text: str,
    on_kubernetes: bool = True,
    local_run: LocalRun | None = None,
):
    """The pipeline function of ``method`` for ``cfg`` (``pipeline.iterations`` unrolled).

    Args:
        method: The method's pairs sub-graph and log component.
        cfg: The configuration (its values decide the shape: iterations, Kubernetes settings).
        config_text: Default of the ``config`` parameter (the same config as one-line JSON).
        on_kubernetes: Apply ``cfg.kubernetes`` to the tasks (off for ``kfp.local`` runs).
        local_run: A local run's key and checkpoint root: cache the tasks under its key.
    """
    iterations = cfg.pipeline.iterations

    @dsl.pipeline(name=f"{cfg.pipeline.name}-{method.name}", description=method.description)
    def pipeline(config: str = config_text, run_date: str = "") -> Artifact:
        s: Start = start(config, run_date, cfg)
        policy, report, history = s.policy, s.report, s.history
        for i in range(1, iterations + 1):
            made = method.pairs(config, cfg, i, policy, s)
            step = train_and_select(config, cfg, i, policy, report, made.pairs, s.world)
            logged = method.log(
                config=config,
                run_id=s.run_id,
                iteration=i,
                history=history,
                report=step.report,
                candidate_report=step.candidate_report,
                pairs=made.pairs,
                trained=step.trained,
                **made.log_inputs,
            )
            logged.set_display_name(f"iteration {i}: log").set_caching_options(False)
            policy, report, history = step.policy, step.report, logged.output
        summary = finish(config, s, history, policy, report)
        if on_kubernetes:
            configure_all(cfg)
        if local_run is not None:
            configure_local(local_run)
        return summary

    return pipeline
