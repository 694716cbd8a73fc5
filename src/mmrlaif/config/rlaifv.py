"""RLAIF-V's data sections: deconfounded candidate sampling, divide-and-conquer AI feedback
(labeling) and the pair rules (``sampling``, ``labeling``, ``pairs``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mmrlaif.config.strict import ConfigError


@dataclass(frozen=True)
class SamplingConfig:
    """Deconfounded candidate sampling (RLAIF-V): n answers per prompt, identical settings.

    Attributes:
        n: Candidates per prompt (the reference uses 10).
        temperature: Sampling temperature (reference 0.7).
        max_new_tokens: Generation budget (reference 512; the toy world needs far fewer).
        prompts_per_batch: Prompts per ``generate`` call (each expanded to ``n`` rows).
        seed: Run seed; each (prompt, sample) draws from its own stream derived from it.
        backend: Generation backend: ``transformers`` (the policy loaded in-process) or
            ``openai`` (an OpenAI-compatible chat-completions endpoint, e.g. vLLM, serving
            the policy; see :mod:`mmrlaif.sampling.endpoint`).
        endpoint: API root of the ``openai`` backend, e.g. ``http://host:8000/v1``
            (required for it).
        endpoint_model: The served model name sent as ``model`` (``None``: omitted, the
            server's default model answers, as vLLM does).
        max_in_flight: ``openai``: most concurrent requests.
        per_prompt_requests: ``openai``: one request per prompt asking for ``n`` choices
            (seeded from the prompt alone; the server seeds choice ``i`` with that seed + i)
            instead of one request per (prompt, sample). Faster on vLLM, but a sample is then
            reproducible only with its prompt's whole request on the same server, not on its
            own, and differs from the per-sample mode's sample.
        api_key_env: ``openai``: environment variable holding the API key (unset: none).
        serve_policy: ``openai``: start an OpenAI-compatible server on the current policy
            inside the sampling task (on its GPU), sample through it, stop it at the end;
            ``endpoint`` is then that server.
        serve_command: The server's command; ``{model}``, ``{host}``, ``{port}`` are filled
            in (vLLM by default; ``python -m mmrlaif.models.serve ...`` serves the tiny model).
        serve_timeout_s: How long to wait for the server to answer ``/health``.
    """

    backend: Literal["transformers", "openai"] = "transformers"
    n: int = 10
    temperature: float = 0.7
    max_new_tokens: int = 512
    prompts_per_batch: int = 8
    seed: int = 0
    endpoint: str | None = None
    endpoint_model: str | None = None
    max_in_flight: int = 8
    per_prompt_requests: bool = False
    api_key_env: str = "OPENAI_API_KEY"
    serve_policy: bool = False
    serve_command: tuple[str, ...] = (
        "vllm", "serve", "{model}", "--host", "{host}", "--port", "{port}", "--seed", "0",
    )  # fmt: skip
    serve_timeout_s: float = 900.0

    def __post_init__(self) -> None:
        if self.serve_policy and self.backend != "openai":
            raise ConfigError("serve_policy needs backend: openai (it samples through a server)")
        if self.backend == "openai" and not (self.endpoint or self.serve_policy):
            raise ConfigError(
                "endpoint is required when backend is 'openai' "
                "(the API root, e.g. http://host:8000/v1), unless serve_policy is on"
            )
        if self.max_in_flight < 1:
            raise ConfigError(f"max_in_flight must be >= 1, got {self.max_in_flight}")
        for key in ("n", "max_new_tokens", "prompts_per_batch"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if not self.temperature > 0:
            raise ConfigError(
                f"temperature: must be > 0 (candidates are sampled), got {self.temperature}"
            )


@dataclass(frozen=True)
class LabelingConfig:
    """Divide-and-conquer feedback.

    Attributes:
        extractor: ``lexicon`` (object mentions, the toy world) or ``llm`` (an instruct LLM).
        question_builder: ``template`` (for lexicon claims) or ``llm``.
        llm_name_or_path: The chat/instruct causal LM of the ``llm`` extractor / builder (its
            served name when ``llm_endpoint`` is set). Prompts go through the model's chat
            template, as in the reference: a model whose tokenizer has none (a base LM) is
            an error, not a raw-text fallback.
        llm_endpoint: Base URL of an OpenAI-compatible API serving that LLM (e.g. vLLM's
            ``http://host:8000/v1``): the ``llm`` parts then call
            ``<llm_endpoint>/chat/completions`` (one user message; the server applies the
            template) with model ``llm_name_or_path`` and the ``llm_*`` sampling settings
            below (``seed`` per request) instead of loading it; API key from the
            ``OPENAI_API_KEY`` environment variable, if set. ``None``: load it in-process.
        llm_question_name_or_path: The question-rewrite LLM when it is another model than
            the extractor's (the reference's released fine-tuned "changeq" model beside its
            "split" model); ``None``: ``llm_name_or_path``.
        llm_question_endpoint: The endpoint serving ``llm_question_name_or_path``; ``None``:
            ``llm_endpoint``.
        llm_prompt_format: ``instruct`` (the project's prompts, for a general instruct model)
            or ``rlaifv_finetuned`` (the exact prompts and output parsing of RLAIF-V's
            ``utils/llama3_8b_inference.py``, which its released fine-tuned split /
            question-rewrite Llama-3-8B models were trained on). Both ask for one
            question-rewrite call per response, the claims as a list, zipped back.
        llm_temperature: Sampling temperature of the LLM parts (the reference: 0.2; 0: greedy).
        llm_top_p: Nucleus mass (the reference: 0.9; 1: off).
        llm_top_k: Top-k cut (50: the Hugging Face default the reference's ``generate``
            applies implicitly; 0: off, and not sent to an endpoint).
        llm_max_new_tokens: New tokens per call, extraction and question rewrite alike (the
            reference: 256).
        llm_max_words: The extraction prompt (template, question and answer) is cut to this
            many words (the reference: 300).
        llm_seed: Seed of the LLM parts' sampling: each call draws from a seed derived from
            it and the call's prompt (in-process: the project's seeded sampler; endpoint: the
            request's ``seed``), so identical inputs get identical outputs in any order,
            batch or shard.
        labeler: ``policy`` (self-feedback by the current policy), ``initial`` (self-feedback
            by a frozen copy of the pipeline's starting policy), ``model`` (the VLM at
            ``labeler_name_or_path``) or ``openai`` (an OpenAI-compatible endpoint at
            ``endpoint``).
        labeler_name_or_path: The labeler VLM for ``model`` / its served name for ``openai``.
        endpoint: Base URL of the OpenAI-compatible server (``openai`` labeler).
        batch_size: Questions per forward pass.
        prefix_cache: Encode each image once and reuse its KV cache across its questions.
        reject_threshold: A claim is rejected when the labeler's P(no) / (P(yes) + P(no)) is
            at least this: 0.5 is RLAIF-V's P(no) >= P(yes); higher rejects only confident
            "no"s, fewer false rejections of what is there (a weaker labeler's main noise).
    """

    extractor: Literal["lexicon", "llm"] = "lexicon"
    question_builder: Literal["template", "llm"] = "template"
    llm_name_or_path: str | None = None
    llm_endpoint: str | None = None
    llm_question_name_or_path: str | None = None
    llm_question_endpoint: str | None = None
    llm_prompt_format: Literal["instruct", "rlaifv_finetuned"] = "instruct"
    llm_temperature: float = 0.2
    llm_top_p: float = 0.9
    llm_top_k: int = 50
    llm_max_new_tokens: int = 256
    llm_max_words: int = 300
    llm_seed: int = 0
    labeler: Literal["policy", "initial", "model", "openai"] = "policy"
    labeler_name_or_path: str | None = None
    endpoint: str | None = None
    batch_size: int = 64
    prefix_cache: bool = True
    reject_threshold: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.reject_threshold <= 1.0:
            raise ConfigError(f"reject_threshold must be in (0, 1], got {self.reject_threshold}")
        if self.labeler in ("model", "openai") and not self.labeler_name_or_path:
            raise ConfigError(
                f"labeler_name_or_path: labeler {self.labeler!r} needs the labeler VLM's path "
                "or hub id (for 'openai': its name on the server)"
            )
        if self.labeler == "openai" and not self.endpoint:
            raise ConfigError("endpoint: labeler 'openai' needs the server's API root")
        checks = {
            "llm_temperature": (0.0 <= self.llm_temperature < float("inf"), ">= 0 (0: greedy)"),
            "llm_top_p": (0.0 < self.llm_top_p <= 1.0, "in (0, 1]"),
            "llm_top_k": (self.llm_top_k >= 0, ">= 0 (0: off)"),
            "llm_max_new_tokens": (self.llm_max_new_tokens >= 1, ">= 1"),
            "llm_max_words": (self.llm_max_words >= 1, ">= 1"),
            "llm_seed": (self.llm_seed >= 0, ">= 0"),
        }
        for key, (ok, rule) in checks.items():
            if not ok:
                raise ConfigError(f"{key}: must be {rule}, got {getattr(self, key)!r}")


@dataclass(frozen=True)
class PairsConfig:
    """RLAIF-V pair rules.

    Attributes:
        min_gap: Smallest score gap between chosen and rejected.
        max_pairs_per_prompt: At most this many pairs per prompt (drawn with ``seed``).
        balance_lengths: Sweep the share of longer-chosen pairs as RLAIF-V does.
        seed: Seed of the draws.
        replay_yesno: Checker protection: mix this many yes/no questions of the SFT data into
            each iteration's pairs (chosen: the right answer, rejected: the other), so that
            caption-only DPO does not erode the policy's own yes/no check (0: none).
        add_povid: RLAIF-V and POVID combined: each RLAIF-V iteration adds the POVID pairs
            (``povid.*`` settings, the current policy answering on noised images) to its own.
    """

    min_gap: float = 1.0
    max_pairs_per_prompt: int = 2
    balance_lengths: bool = True
    seed: int = 0
    replay_yesno: int = 0
    add_povid: bool = False
