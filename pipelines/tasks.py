"""What each component's tasks are, declared once: Kubernetes role, retries, model volume, and
whether a resumed local run reuses them.

Every component a pipeline uses must be declared here: an undeclared one is an error when the
pipeline is built (compiled or run), instead of silently running as a CPU task without retries.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfp import dsl
from kfp.dsl import pipeline_context


@dataclass(frozen=True)
class TaskKind:
    """How the tasks of one component run.

    Attributes:
        role: ``cpu``, ``gpu`` (base policy, sampling, labeling, POVID pairs, evaluation) or
            ``train`` (DPO: ``kubernetes.train``, else the ``gpu`` settings).
        retried: Its failures are usually transient (network, external services): retried with
            backoff (``kubernetes.retries``).
        models: Reads or writes model folders: mounts the shared volume when there is one (and,
            for DPO, keeps its checkpoints there, which makes its retries resume).
        tracking: Logs to MLflow: runs again when a killed local run resumes, into the resumed
            run's new MLflow run (never taken from kfp.local's cache).
    """

    role: str = "cpu"
    retried: bool = False
    models: bool = False
    tracking: bool = False


#: Component name -> how its tasks run.
TASKS: dict[str, TaskKind] = {
    "prepare-world": TaskKind(retried=True),
    "base-policy": TaskKind("gpu", models=True),
    "evaluate": TaskKind("gpu"),
    "sample": TaskKind("gpu", retried=True),
    "label": TaskKind("gpu", retried=True),
    "merge-shards": TaskKind(),
    "build-pairs": TaskKind(),
    "povid-pairs": TaskKind("gpu"),
    "train-dpo": TaskKind("train", models=True),
    "train-dpo-trainjob": TaskKind(retried=True),
    "select-policy": TaskKind(),
    "start-tracking": TaskKind(retried=True, tracking=True),
    "log-base": TaskKind(retried=True, tracking=True),
    "log-rlaifv-iteration": TaskKind(retried=True, tracking=True),
    "log-povid-iteration": TaskKind(retried=True, tracking=True),
    "register": TaskKind(retried=True, tracking=True),
    "finish-tracking": TaskKind(retried=True, tracking=True),
}


def kind_of(component_name: str) -> TaskKind:
    """The declared kind of a component's tasks.

    Raises:
        ValueError: The component is not declared in :data:`TASKS`.
    """
    try:
        return TASKS[component_name]
    except KeyError:
        raise ValueError(
            f"component {component_name!r} is not declared in mmrlaif.pipelines.tasks.TASKS "
            "(its Kubernetes role, retries, model volume, tracking): declare it there"
        ) from None


def defined_tasks(caller: str) -> list[dsl.PipelineTask]:
    """The tasks of the pipeline being defined (call from the end of a pipeline function's
    body, when they all exist).

    Raises:
        RuntimeError: Naming ``caller`` when no pipeline is being defined.
    """
    pipeline = pipeline_context.Pipeline.get_default_pipeline()
    if pipeline is None:
        raise RuntimeError(f"{caller} must be called inside a pipeline function")
    return list(pipeline.tasks.values())
