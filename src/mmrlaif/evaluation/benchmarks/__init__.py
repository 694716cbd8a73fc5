"""The field's hallucination benchmarks: loaders and metrics as each benchmark defines them.

* :mod:`~mmrlaif.evaluation.benchmarks.pope` - POPE (random / popular / adversarial).
* :mod:`~mmrlaif.evaluation.benchmarks.amber` and :mod:`~.amber_metrics` - AMBER, generative
  (CHAIR, Cover, Hal, Cog) and discriminative (accuracy, precision / recall / F1, "No" positive).
* :mod:`~mmrlaif.evaluation.benchmarks.object_halbench` - Object HalBench (CHAIR on COCO).
* :mod:`~mmrlaif.evaluation.benchmarks.mmhal` - MMHal-Bench, rated 0-6 by an LLM judge.
* :mod:`~mmrlaif.evaluation.benchmarks.coco` - the 80 COCO categories, a synonym lexicon and
  CHAIR's special cases, COCO ground truth.
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
from mmrlaif.evaluation.benchmarks.coco import (
    COCO_CATEGORIES,
    CocoObjectExtractor,
    coco_lexicon,
    load_coco_ground_truth,
)
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
    ObjectHalBenchResult,
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
    "COCO_CATEGORIES",
    "AmberResult",
    "AnswerFn",
    "BenchmarkDataError",
    "BenchmarkFormatError",
    "BenchmarkOptions",
    "BenchmarkReport",
    "CocoObjectExtractor",
    "DataRoot",
    "MMHalJudge",
    "MMHalResult",
    "ObjectHalBenchResult",
    "amber_discriminative",
    "amber_generative",
    "coco_lexicon",
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
