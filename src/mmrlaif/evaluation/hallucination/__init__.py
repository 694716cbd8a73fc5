"""The field's hallucination benchmarks: loaders and metrics as each benchmark defines them.

* :mod:`~mmrlaif.evaluation.hallucination.pope` - POPE (random / popular / adversarial).
* :mod:`~mmrlaif.evaluation.hallucination.amber` and :mod:`~.amber_metrics` - AMBER, generative
  (CHAIR, Cover, Hal, Cog) and discriminative (accuracy, precision / recall / F1, "No" positive).
* :mod:`~mmrlaif.evaluation.hallucination.object_halbench` - Object HalBench (CHAIR on COCO).
* :mod:`~mmrlaif.evaluation.hallucination.chair` - CHAIR as Rohrbach's and RLAIF-V's scripts
  compute it, from the benchmark's own synonym file.
* :mod:`~mmrlaif.evaluation.hallucination.mmhal` - MMHal-Bench, rated 0-6 by an LLM judge.
* :mod:`~mmrlaif.evaluation.hallucination.coco` - COCO ground truth for CHAIR.
* :mod:`~mmrlaif.evaluation.hallucination.nlp` - NLTK / Pattern / spaCy as the reference scripts
  call them; fallbacks are recorded and mark figures approximate.
* :mod:`~mmrlaif.evaluation.hallucination.runner` - :func:`run_benchmarks`, the single entry
  point, over any answer function.
* :mod:`~mmrlaif.evaluation.hallucination.policy` - the ``eval.benchmarks`` section run on a
  loaded policy (the evaluate step and ``mmrlaif bench``).

Data is read from local folders or ``s3://`` prefixes (:class:`DataRoot`); malformed files raise
:class:`BenchmarkFormatError` naming file, record and problem; missing data raises
:class:`BenchmarkDataError` (a ``ConfigError``) naming the benchmark and the path.
"""

from mmrlaif.evaluation.hallucination.amber import load_amber
from mmrlaif.evaluation.hallucination.amber_metrics import (
    AmberResult,
    amber_discriminative,
    amber_generative,
    score_amber,
)
from mmrlaif.evaluation.hallucination.chair import ChairResult, ChairVocabulary, chair_metrics
from mmrlaif.evaluation.hallucination.coco import load_coco_ground_truth
from mmrlaif.evaluation.hallucination.common import (
    AnswerFn,
    BenchmarkDataError,
    BenchmarkFormatError,
    DataRoot,
)
from mmrlaif.evaluation.hallucination.mmhal import (
    MMHalJudge,
    MMHalResult,
    load_mmhal,
    mmhal_metrics,
    parse_mmhal_rating,
    score_mmhal,
)
from mmrlaif.evaluation.hallucination.object_halbench import (
    load_object_halbench_items,
    object_halbench_metrics,
)
from mmrlaif.evaluation.hallucination.pope import load_pope, score_pope
from mmrlaif.evaluation.hallucination.runner import (
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
