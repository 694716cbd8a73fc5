"""The field's hallucination benchmarks: loaders and metrics as each benchmark defines them.

* :mod:`~mmrlaif.evaluation.benchmarks.pope` - POPE (random / popular / adversarial).
* :mod:`~mmrlaif.evaluation.benchmarks.amber` and :mod:`~.amber_metrics` - AMBER, generative
  (CHAIR, Cover, Hal, Cog) and discriminative (accuracy, precision / recall / F1, "No" positive).
* :mod:`~mmrlaif.evaluation.benchmarks.object_halbench` - Object HalBench (CHAIR on COCO).
* :mod:`~mmrlaif.evaluation.benchmarks.chair` - CHAIR as Rohrbach's and RLAIF-V's scripts compute
  it, from the benchmark's own synonym file.
* :mod:`~mmrlaif.evaluation.benchmarks.mmhal` - MMHal-Bench, rated 0-6 by an LLM judge.
* :mod:`~mmrlaif.evaluation.benchmarks.coco` - COCO ground truth for CHAIR.
* :mod:`~mmrlaif.evaluation.benchmarks.nlp` - NLTK / Pattern / spaCy as the reference scripts
  call them; fallbacks are recorded and mark figures approximate.
* :mod:`~mmrlaif.evaluation.benchmarks.runner` - :func:`run_benchmarks`, the single entry point.

Data is read from local folders or ``s3://`` prefixes (:class:`DataRoot`); malformed files raise
:class:`BenchmarkFormatError` naming file, record and problem; missing data raises
:class:`BenchmarkDataError` (a ``ConfigError``) naming the benchmark and the path.
"""

from mmrlaif.evaluation.benchmarks.amber import load_amber
from mmrlaif.evaluation.benchmarks.amber_metrics import (
    AmberResult,
    amber_discriminative,
    amber_generative,
    score_amber,
)
from mmrlaif.evaluation.benchmarks.chair import ChairResult, ChairVocabulary, chair_metrics
from mmrlaif.evaluation.benchmarks.coco import load_coco_ground_truth
from mmrlaif.evaluation.benchmarks.common import (
    AnswerFn,
    BenchmarkDataError,
    BenchmarkFormatError,
    DataRoot,
)
from mmrlaif.evaluation.benchmarks.mmhal import (
    MMHalJudge,
    MMHalResult,
    load_mmhal,
    mmhal_metrics,
    parse_mmhal_rating,
    score_mmhal,
)
from mmrlaif.evaluation.benchmarks.object_halbench import (
    load_object_halbench_items,
    object_halbench_metrics,
)
from mmrlaif.evaluation.benchmarks.pope import load_pope, score_pope
from mmrlaif.evaluation.benchmarks.runner import (
    BENCHMARKS,
    BenchmarkOptions,
    BenchmarkReport,
    run_benchmarks,
)

__all__ = [
    "BENCHMARKS",
    "AmberResult",
    "AnswerFn",
    "BenchmarkDataError",
    "BenchmarkFormatError",
    "BenchmarkOptions",
    "BenchmarkReport",
    "ChairResult",
    "ChairVocabulary",
    "DataRoot",
    "MMHalJudge",
    "MMHalResult",
    "amber_discriminative",
    "amber_generative",
    "chair_metrics",
    "load_amber",
    "load_coco_ground_truth",
    "load_mmhal",
    "load_object_halbench_items",
    "load_pope",
    "mmhal_metrics",
    "object_halbench_metrics",
    "parse_mmhal_rating",
    "run_benchmarks",
    "score_amber",
    "score_mmhal",
    "score_pope",
]
