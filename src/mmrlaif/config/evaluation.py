"""The evaluation sections: the held-out toy splits and the field's hallucination benchmarks
(``eval``, ``eval.benchmarks``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from mmrlaif.config.selection import BENCHMARK_NAMES
from mmrlaif.config.strict import ConfigError


@dataclass(frozen=True)
class BenchmarksConfig:
    """The field's hallucination benchmarks, run by every evaluation on top of the toy splits.

    Attributes:
        run: Which of ``pope``, ``amber``, ``object_halbench``, ``mmhal`` to run.
        data: Benchmark -> its data root (a folder or an ``s3://`` prefix in the benchmark's
            published layout); every benchmark in ``run`` needs one.
        limit: The first N items of each benchmark (``null``: all).
        batch_size: (image, prompt) pairs per generation batch.
        max_new_tokens: Generation budget of an answer.
        pope_splits: POPE negative-sampling splits.
        amber_query_file: AMBER query file (``query_all.json``, ``query_generative.json``...).
        pope_answer_rule: ``reference``: POPE's ``evaluate.py`` reading of an answer
            (case-sensitive ``No``/``no``/``not`` words, so ``NO`` or ``No!`` count as yes);
            ``lenient``: case-insensitive, any punctuation separates words (a saner reading,
            not POPE's figures; the report marks it non-reference).
        amber_answer_rule: ``reference``: AMBER's ``inference.py`` reading of a discriminative
            answer (only the exact strings ``Yes`` and ``No``); ``lenient``: POPE-style reading
            of any answer (not AMBER's figures; the report marks it non-reference).
        spacy_model: spaCy model for AMBER's word similarity (``en_core_web_lg``, as AMBER;
            ``null``: no similarity step, figures marked approximate). Where the model or NLTK's
            data is not installed, the figures are computed with a fallback and marked
            approximate in ``benchmarks.json``, MLflow and the report.
        objhal_extractor: How Object HalBench finds an answer's objects: ``lexicon`` (the
            synonym file over NLTK tokens: RLAIF-V's script without ``--use_gpt``) or ``llm``
            (an LLM lists them, as RLAIF-V's published figures were made).
        objhal_extractor_endpoint: OpenAI-compatible API of that LLM (needed for ``llm``).
        objhal_extractor_model: Its model name there (RLAIF-V: ``gpt-3.5-turbo-0613``).
        objhal_extractor_api_key_env: Environment variable holding its API key.
        objhal_spacy_model: spaCy model normalising the LLM's objects (``en_core_web_trf``).
        judge_endpoint: OpenAI-compatible API of the MMHal-Bench judge (needed for ``mmhal``).
        judge_model: The judge's model name on that server.
        judge_api_key_env: Environment variable holding the judge's API key.
    """

    run: tuple[str, ...] = ()
    data: Mapping[str, str] = field(default_factory=dict)
    limit: int | None = None
    batch_size: int = 16
    max_new_tokens: int = 512
    pope_splits: tuple[str, ...] = ("random", "popular", "adversarial")
    pope_answer_rule: Literal["reference", "lenient"] = "reference"
    amber_query_file: str = "query_all.json"
    amber_answer_rule: Literal["reference", "lenient"] = "reference"
    spacy_model: str | None = "en_core_web_lg"
    objhal_extractor: Literal["lexicon", "llm"] = "lexicon"
    objhal_extractor_endpoint: str | None = None
    objhal_extractor_model: str = "gpt-3.5-turbo-0613"
    objhal_extractor_api_key_env: str = "OPENAI_API_KEY"
    objhal_spacy_model: str | None = "en_core_web_trf"
    judge_endpoint: str | None = None
    judge_model: str = "gpt-4-0314"
    judge_api_key_env: str = "OPENAI_API_KEY"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.run) - set(BENCHMARK_NAMES))
        if unknown:
            known = ", ".join(BENCHMARK_NAMES)
            raise ConfigError(f"run: unknown benchmark(s) {', '.join(unknown)}; one of {known}")
        missing = [name for name in self.run if not self.data.get(name)]
        if missing:
            raise ConfigError(
                f"data: no data root for {', '.join(missing)} "
                f"(set eval.benchmarks.data.{missing[0]} to its folder or s3:// prefix)"
            )
        if self.objhal_extractor == "llm" and not self.objhal_extractor_endpoint:
            raise ConfigError(
                "objhal_extractor_endpoint: objhal_extractor llm needs an OpenAI-compatible "
                "endpoint"
            )
        if "mmhal" in self.run and not self.judge_endpoint:
            raise ConfigError("judge_endpoint: mmhal needs an OpenAI-compatible judge endpoint")


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation on the held-out split.

    Attributes:
        max_new_tokens: Generation budget of a description.
        batch_size: Prompts per generation batch.
        pope_categories: POPE negative-sampling settings to evaluate.
        limit: Evaluate on at most this many eval images (``None`` = all).
        benchmarks: The field's benchmarks (POPE, AMBER, Object HalBench, MMHal-Bench) to run
            as well; their headline figures join the report's.
    """

    max_new_tokens: int = 48
    batch_size: int = 64
    pope_categories: tuple[str, ...] = ("random", "popular", "adversarial")
    limit: int | None = None
    benchmarks: BenchmarksConfig = field(default_factory=BenchmarksConfig)
