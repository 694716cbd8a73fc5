"""MLflow tracking of pipeline runs: a parent run per pipeline run, a child run per iteration.

Pure Python (no KFP): the pipeline's components call these functions with a tracking URI and
explicit run ids. MLflow is imported lazily, on first use.
"""

from mmrlaif.tracking.mlflow_run import (
    finish_pipeline_run,
    flatten_params,
    iteration_run_name,
    log_iteration,
    start_pipeline_run,
    summarize_headlines,
)
from mmrlaif.tracking.plotting import plot_iterations
from mmrlaif.tracking.registry import register_model
from mmrlaif.tracking.uri import default_artifact_root, open_ui_command, resolve_tracking_uri

__all__ = [
    "default_artifact_root",
    "finish_pipeline_run",
    "flatten_params",
    "iteration_run_name",
    "log_iteration",
    "open_ui_command",
    "plot_iterations",
    "register_model",
    "resolve_tracking_uri",
    "start_pipeline_run",
    "summarize_headlines",
]
