"""RLAIF-V: N on-policy iterations of sample -> label -> pairs -> DPO -> evaluate -> select."""

from kfp import dsl
from kfp.dsl import Artifact

from mmrlaif.components.label import label
from mmrlaif.components.pairs import build_pairs
from mmrlaif.components.sample import sample
from mmrlaif.components.track import log_rlaifv_iteration
from mmrlaif.config import Config
from mmrlaif.pipelines.common import Start, finish, start, train_and_select
from mmrlaif.pipelines.kube import configure_all


def rlaif_v_pipeline(cfg: Config, config_text: str, on_kubernetes: bool = True):
    """The RLAIF-V pipeline function for ``cfg`` (``pipeline.iterations`` unrolled).

    Args:
        cfg: The configuration (its values decide the shape: iterations, Kubernetes settings).
        config_text: Default of the ``config`` parameter (the same config as one-line JSON).
        on_kubernetes: Apply ``cfg.kubernetes`` to the tasks (off for ``kfp.local`` runs).

    (No ``from __future__ import annotations`` here: KFP reads the annotations as types.)
    """
    iterations = cfg.pipeline.iterations

    @dsl.pipeline(
        name=f"{cfg.pipeline.name}-rlaif-v",
        description="RLAIF-V: iterative on-policy DPO on AI feedback (self-feedback or a labeler).",
    )
    def rlaif_v(config: str = config_text, run_date: str = "") -> Artifact:
        s: Start = start(config, run_date, cfg)
        policy, report, history = s.policy, s.report, s.history
        for i in range(1, iterations + 1):
            sampled = sample(config=config, iteration=i, policy=policy, world=s.world)
            labeled = label(
                config=config,
                policy=policy,
                initial_policy=s.policy,
                world=s.world,
                samples=sampled.outputs["samples"],
            )
            paired = build_pairs(
                config=config, iteration=i, feedback=labeled.outputs["feedback"], world=s.world
            )
            step = train_and_select(
                config, cfg, i, policy, report, paired.outputs["pairs"], s.world
            )
            logged = log_rlaifv_iteration(
                config=config,
                run_id=s.run_id,
                iteration=i,
                history=history,
                report=step.report,
                candidate_report=step.candidate_report,
                samples=sampled.outputs["samples"],
                feedback=labeled.outputs["feedback"],
                pairs=paired.outputs["pairs"],
                trained=step.trained,
            )
            for task, name in ((sampled, "sample"), (labeled, "label"), (paired, "pairs")):
                task.set_display_name(f"iteration {i}: {name}")
            # fresh samples and verdicts every run, even with the same config and policy path
            sampled.set_caching_options(False)
            labeled.set_caching_options(False)
            logged.set_display_name(f"iteration {i}: log").set_caching_options(False)
            policy, report, history = step.policy, step.report, logged.output
        summary = finish(config, s, history, policy, report)
        if on_kubernetes:
            configure_all(cfg)
        return summary

    return rlaif_v
