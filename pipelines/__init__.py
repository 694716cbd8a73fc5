"""KFP pipeline definitions (shipped as ``mmrlaif.pipelines``): RLAIF-V and POVID.

Iterations are unrolled at compile time from ``pipeline.iterations``. The resolved config is
the pipeline's one parameter (``config``, one line of JSON, which is also YAML), so a submitted
run can override values without recompiling (but not the number of iterations).
"""

from mmrlaif.pipelines.build import build_pipeline, compile_pipeline

__all__ = ["build_pipeline", "compile_pipeline"]
