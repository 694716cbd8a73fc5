"""Close the MLflow parent runs that a run folder's pipeline runs left ``RUNNING``.

A task that failed, an interrupted ``mmrlaif run`` or a killed earlier run never reach the
finish step, so their parent runs stay open; ``mmrlaif run`` closes them (status ``FAILED`` or
``KILLED``, tag ``terminated_reason``). The parent runs of a run folder are the outputs of its
pipeline runs' start-tracking tasks (:func:`~mmrlaif.tracking.report_data.parent_run_ids`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mmrlaif.tracking import mlflow_client as mf
from mmrlaif.tracking.report_data import parent_run_ids
from mmrlaif.tracking.uri import tracking_uri

if TYPE_CHECKING:
    from mmrlaif.config import Config

logger = logging.getLogger(__name__)


def close_unfinished_runs(cfg: Config, status: str, reason: str) -> list[str]:
    """Close the MLflow parent runs of ``run.output_dir``'s pipeline runs that are still
    ``RUNNING`` (a task failed, the run was interrupted, or an earlier run was killed):
    status ``status`` (``FAILED`` or ``KILLED``) and tag ``terminated_reason``.

    Returns:
        The run ids closed.
    """
    # lazy: mlflow takes seconds to import; importing mmrlaif.tracking stays cheap
    from mlflow.exceptions import MlflowException

    ids = parent_run_ids(cfg.run.output_dir)
    if not ids:
        return []
    client = mf.client(tracking_uri(cfg))
    closed = []
    for run_id in ids:
        try:
            if client.get_run(run_id).info.status != "RUNNING":
                continue
            client.set_tag(run_id, "terminated_reason", reason)
            client.set_terminated(run_id, status=status)
        except MlflowException as exc:
            logger.warning("could not close MLflow run %s: %s", run_id, exc)
            continue
        logger.warning("MLflow run %s closed as %s: %s", run_id, status, reason)
        closed.append(run_id)
    return closed
