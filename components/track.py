"""MLflow tracking: a parent run per pipeline run, a child run per iteration, registration."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from mmrlaif.components._image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def start_tracking(config: str, run_date: str = "") -> str:
    """Open the parent run (resolved config as params, the run date as a tag); returns its id."""
    from mmrlaif.config import parse_config
    from mmrlaif.steps.track import start_step

    return start_step(parse_config(config), run_date=run_date)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def log_base(
    config: str,
    run_id: str,
    report: Input[Artifact],
    world: Input[Dataset],
    policy: Input[Model],
) -> str:
    """Tag the run's lineage (starting policy, prompts consumed); log the starting policy as
    iteration 0; returns the history (JSON)."""
    from mmrlaif.config import parse_config
    from mmrlaif.steps.track import log_iteration_step, record_lineage_step

    cfg = parse_config(config)
    record_lineage_step(cfg, run_id, world.path, policy.path)
    return log_iteration_step(cfg, run_id, 0, "[]", report.path)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def log_rlaifv_iteration(
    config: str,
    run_id: str,
    iteration: int,
    history: str,
    report: Input[Artifact],
    candidate_report: Input[Artifact],
    samples: Input[Dataset],
    feedback: Input[Dataset],
    pairs: Input[Dataset],
    trained: Input[Model],
) -> str:
    """Log an RLAIF-V iteration (stats, DPO curve, pairs with verdicts, eval); extend history."""
    from mmrlaif.config import parse_config
    from mmrlaif.steps.track import log_iteration_step

    return log_iteration_step(
        parse_config(config),
        run_id,
        iteration,
        history,
        report.path,
        samples.path,
        feedback.path,
        pairs.path,
        trained.path,
        candidate_report.path,
    )


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def log_povid_iteration(
    config: str,
    run_id: str,
    iteration: int,
    history: str,
    report: Input[Artifact],
    candidate_report: Input[Artifact],
    pairs: Input[Dataset],
    trained: Input[Model],
) -> str:
    """Log a POVID iteration (pair stats, DPO curve, pairs, eval); extend history."""
    from mmrlaif.config import parse_config
    from mmrlaif.steps.track import log_iteration_step

    return log_iteration_step(
        parse_config(config),
        run_id,
        iteration,
        history,
        report.path,
        pairs_dir=pairs.path,
        trained_run=trained.path,
        candidate_report_dir=candidate_report.path,
    )


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def finish_tracking(
    config: str, run_id: str, history: str, registration: str, summary: Output[Artifact]
):
    """Close the parent run: plot of hallucination against iteration, summary, final figures."""
    from mmrlaif.config import parse_config
    from mmrlaif.io import write_json
    from mmrlaif.steps.track import finish_step

    write_json(finish_step(parse_config(config), run_id, history, registration), summary.path)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def register(
    config: str,
    run_id: str,
    history: str,
    policy: Input[Model],
    report: Input[Artifact],
    world: Input[Dataset],
) -> str:
    """Register the final policy and run the promotion gate (a continual run then advances
    its watermark); returns the decision as JSON."""
    import json

    from mmrlaif.config import parse_config
    from mmrlaif.steps.track import register_step

    cfg = parse_config(config)
    return json.dumps(register_step(cfg, run_id, history, policy.path, report.path, world.path))
