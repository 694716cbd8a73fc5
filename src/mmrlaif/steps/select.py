"""The select-policy component's step: carry forward the better of the newly trained policy
and the incumbent."""

from __future__ import annotations

from pathlib import Path

from mmrlaif import artifacts
from mmrlaif.evaluation.select import (
    Selection,
    candidate_model,
    read_selection_report,
    select_policy,
)
from mmrlaif.io import copy_tree, write_json


def select_step(
    metric: str,
    new_run: str | Path,
    new_report_dir: str | Path,
    incumbent_run: str | Path,
    incumbent_report_dir: str | Path,
    out_run: str | Path,
    out_report_dir: str | Path,
) -> Selection:
    """Compare two policy artifacts on their selection figures; copy the winner out.

    The new run's contender is the candidate its evaluation found best (its final model, or an
    intermediate checkpoint with ``pipeline.select_every``). The winner's model goes to
    ``out_run/model`` and its reports to ``out_report_dir``; the decision is written as
    ``selection.json`` in both.
    """
    new, candidate = read_selection_report(new_report_dir)
    incumbent, _ = read_selection_report(incumbent_report_dir)
    decision = select_policy(metric, new, incumbent)
    decision = Selection(**{**decision.to_dict(), "candidate": candidate})
    if decision.keep_new:
        model, reports = candidate_model(new_run, candidate), new_report_dir
    else:
        model, reports = artifacts.model_dir(incumbent_run), incumbent_report_dir
    copy_tree(model, Path(out_run) / artifacts.MODEL_SUBDIR)
    copy_tree(reports, out_report_dir)
    for folder in (out_run, out_report_dir):
        write_json(decision.to_dict(), Path(folder) / "selection.json")
    return decision
