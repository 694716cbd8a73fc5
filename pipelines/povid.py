"""POVID: chosen = the truth; rejected = injected hallucinations / the policy's answer on noise."""

from kfp import dsl
from kfp.dsl import Artifact

from mmrlaif.components.pairs import povid_pairs
from mmrlaif.components.track import log_povid_iteration
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


def povid_pipeline(
    cfg: Config,
    config_text: str,
    on_kubernetes: bool = True,
    local_run: LocalRun | None = None,
):
    """The POVID pipeline function for ``cfg`` (``pipeline.iterations`` unrolled; arguments as
    :func:`mmrlaif.pipelines.rlaif_v.rlaif_v_pipeline`)."""
    iterations = cfg.pipeline.iterations

    @dsl.pipeline(
        name=f"{cfg.pipeline.name}-povid",
        description="POVID: DPO on ground truth vs injected and noise-induced hallucinations.",
    )
    def povid(config: str = config_text, run_date: str = "") -> Artifact:
        s: Start = start(config, run_date, cfg)
        policy, report, history = s.policy, s.report, s.history
        for i in range(1, iterations + 1):
            paired = povid_pairs(config=config, iteration=i, policy=policy, world=s.world)
            paired.set_display_name(f"iteration {i}: povid pairs")
            step = train_and_select(
                config, cfg, i, policy, report, paired.outputs["pairs"], s.world
            )
            logged = log_povid_iteration(
                config=config,
                run_id=s.run_id,
                iteration=i,
                history=history,
                report=step.report,
                candidate_report=step.candidate_report,
                pairs=paired.outputs["pairs"],
                trained=step.trained,
            )
            logged.set_display_name(f"iteration {i}: log").set_caching_options(False)
            policy, report, history = step.policy, step.report, logged.output
        summary = finish(config, s, history, policy, report)
        if on_kubernetes:
            configure_all(cfg)
        if local_run is not None:
            configure_local(local_run)
        return summary

    return povid
