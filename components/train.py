"""DPO training of one iteration."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from mmrlaif.components._image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def train_dpo(
    config: str,
    iteration: int,
    policy: Input[Model],
    pairs: Input[Dataset],
    trained: Output[Model],
    metrics: Output[Metrics],
):
    """DPO from the iteration's starting policy (also the reference) on its pairs."""
    from mmrlaif.artifacts import log_metrics
    from mmrlaif.config import parse_config
    from mmrlaif.steps.train import train_in_task

    # the output's URI is the same across retries of this task: the key of its checkpoints
    report = train_in_task(
        parse_config(config), iteration, policy.path, pairs.path, trained.path, trained.uri
    )
    log_metrics(metrics, {"pairs": report["n_pairs"], "seconds": report["seconds"] or 0.0})


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def train_dpo_trainjob(
    config: str,
    iteration: int,
    job_id: str,
    policy: Input[Model],
    pairs: Input[Dataset],
    trained: Output[Model],
    metrics: Output[Metrics],
):
    """DPO as a multi-node Kubeflow Trainer TrainJob (``kubernetes.trainjob``); this task only
    stages the inputs on S3, launches the job, follows it and downloads the trained policy.

    ``job_id`` is the pipeline run's id (``dsl.PIPELINE_JOB_ID_PLACEHOLDER``): with the
    iteration it names the TrainJob, so a retried task attaches to its job instead of
    starting another.
    """
    from mmrlaif.artifacts import log_metrics
    from mmrlaif.config import parse_config
    from mmrlaif.steps.trainjob import run_label, trainjob_name, trainjob_step

    result = trainjob_step(
        parse_config(config),
        iteration,
        policy.path,
        pairs.path,
        trained.path,
        job_name=trainjob_name(job_id, iteration),
        labels={"mmrlaif/pipeline-run": run_label(job_id)},
    )
    log_metrics(
        metrics,
        {"pairs": result.n_pairs, "seconds": result.train_seconds, "job_seconds": result.seconds},
    )
