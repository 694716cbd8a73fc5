"""The one iteration skeleton of both methods: start, N unrolled iterations of
pairs -> train DPO -> evaluate -> select -> log, then register and finish. A method supplies
only its pairs sub-graph (:class:`Method`).

(No ``from __future__ import annotations`` here: KFP reads the pipeline function's annotations
as types.)
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kfp import dsl
from kfp.dsl import Artifact

from mmrlaif.config import Config
from mmrlaif.pipelines.common import (
    LocalRun,
    Start,
    configure_local,
    finish,
    start,
    train_and_select,
)
from mmrlaif.pipelines.kube import configure_all


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
        name: Pipeline name suffix (``rlaif-v``, ``povid``).
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
