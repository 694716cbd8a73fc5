"""The stage sections of the configuration: world, model, SFT, sampling, labeling, pairs,
POVID, DPO, evaluation, pipeline and tracking."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mmrlaif.config.platform import GateConfig
from mmrlaif.config.selection import (
    BENCHMARK_NAMES,
    BENCHMARK_SELECT_METRICS,
    LATEST_METRIC,
    TOY_SELECT_METRICS,
)
from mmrlaif.config.strict import ConfigError
from mmrlaif.families import DEFAULT_LORA_MODULES, FAMILIES, parse_twin_spec


@dataclass(frozen=True)
class WorldConfig:
    """The synthetic toy world: images, the co-occurrence prior and the noisy annotator.

    Attributes:
        seed: Seed of every random draw in the world.
        image_size: Side of the square RGB images, in pixels.
        n_train: Images in the SFT split (captioned and questioned).
        n_align: Images in the alignment split (unlabelled instructions for RLAIF-V / POVID).
        n_eval: Images in the held-out evaluation split.
        min_objects: Fewest objects drawn in one image.
        max_objects: Most objects drawn in one image.
        partner_prob: Probability that an object of a co-occurring pair brings its partner.
        annotator_hallucination_rate: Probability that the caption annotator names an absent
            partner right after its present member (the language prior, ``q``).
        synonym_rate: Probability that the annotator names an object by a synonym.
        captions_per_image: Reference captions written per SFT image.
        yesno_per_image: Yes/no questions per SFT image (half yes, half no).
        adversarial_share: Share of the SFT "no" questions that ask for an absent partner.
        object_size: Inclusive range of object sizes, in pixels.
        grid_cell: Pitch of a placement grid (one object per cell); 0 places objects freely,
            straddling patch boundaries (a harder world).
        palette: ``distinct`` (co-occurring partners differ in colour) or ``shared`` (partners
            share a colour, so only shape separates them: a harder world).
        colour_jitter: Largest per-channel colour perturbation of an object.
        pixel_noise: Standard deviation of Gaussian pixel noise, on a 0-255 scale.
        pope_per_image: POPE questions per eval image and category (half yes, half no).
        positive_weighting: How a "yes" SFT question picks its present object: ``uniform``, or
            ``inverse_frequency`` (rare objects asked as often as common ones, so the policy's
            self-check is not biased against them).
        n_val: Images in the validation split, on which the pipeline picks the checkpoint it
            carries forward (the eval split is only ever reported, never selected on).
    """

    seed: int = 0
    image_size: int = 64
    n_train: int = 1500
    n_align: int = 400
    n_eval: int = 300
    min_objects: int = 1
    max_objects: int = 4
    partner_prob: float = 0.7
    annotator_hallucination_rate: float = 0.5
    synonym_rate: float = 0.2
    captions_per_image: int = 2
    yesno_per_image: int = 2
    adversarial_share: float = 0.5
    object_size: tuple[int, int] = (12, 18)
    grid_cell: int = 0
    palette: Literal["distinct", "shared"] = "distinct"
    colour_jitter: int = 24
    pixel_noise: float = 6.0
    pope_per_image: int = 2
    positive_weighting: Literal["uniform", "inverse_frequency"] = "inverse_frequency"
    n_val: int = 100

    def __post_init__(self) -> None:
        for key in ("n_train", "n_align", "n_eval", "n_val", "image_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ConfigError(
                f"min_objects: must be in [1, max_objects={self.max_objects}], "
                f"got {self.min_objects}"
            )


@dataclass(frozen=True)
class TinyVLMConfig:
    """Shape of the tiny LLaVA-style model built locally (CLIP vision tower + Llama decoder)."""

    vision_hidden: int = 128
    vision_layers: int = 2
    vision_heads: int = 4
    patch_size: int = 8
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_intermediate: int = 256
    vocab_size: int = 512


@dataclass(frozen=True)
class ModelConfig:
    """Which policy model to use.

    Attributes:
        name_or_path: The starting policy: a hub id, a local ``save_pretrained`` directory, an
            ``s3://`` folder, or a registry reference ``models:/<name>@<alias>`` /
            ``models:/<name>/<version>`` (resolved when the run starts and recorded on it), or
            ``twin:<family>[@<seed>]``: a tiny random twin of a real family's architecture
            (:mod:`mmrlaif.models.twins`), built on the spot, to rehearse a real preset on CPU.
            ``None`` builds the tiny toy-world VLM from :attr:`tiny` (and its tokenizer from the
            world's text) and fine-tunes it on the world.
        tiny: Shape of the tiny VLM when one is built.
        trust_remote_code: Passed to ``from_pretrained``; off unless a config turns it on.
        dtype: Torch dtype name for loading (``float32`` on CPU, ``bfloat16`` on GPU).
        seed: Seed of the weight initialisation of a built model.
        family: The model family (``mmrlaif.models.families``: ``llava``, ``qwen2_vl``...)
            when the architecture's ``model_type`` is not one the project knows but is laid
            out like a supported family; ``null``: detected from the model's config.
    """

    name_or_path: str | None = None
    tiny: TinyVLMConfig = field(default_factory=TinyVLMConfig)
    trust_remote_code: bool = False
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    seed: int = 0
    family: str | None = None

    def __post_init__(self) -> None:
        if self.name_or_path is not None and self.name_or_path.startswith("twin:"):
            try:
                parse_twin_spec(self.name_or_path)
            except ValueError as exc:
                raise ConfigError(f"name_or_path: {exc}") from exc
        if self.family is not None and self.family not in FAMILIES:
            raise ConfigError(
                f"family: unknown model family {self.family!r}; one of {', '.join(FAMILIES)}"
            )


@dataclass(frozen=True)
class SFTConfig:
    """Supervised fine-tuning of the base policy on the world's captions and questions.

    Attributes:
        trainer: Keyword arguments for ``transformers.TrainingArguments``, passed through as is
            (its own validation applies). ``output_dir`` is set by the stage.
        max_length: Token budget per example; longer examples are an error, never truncated.
        freeze_vision_tower: Keep the vision encoder's weights fixed and train the projector and
            the language model, as LLaVA-1.5 does. For the tiny model trained from scratch this
            is what makes it learn to see: trained jointly, its vision tower collapses to one
            constant output for every patch within a few hundred steps and the model stops
            looking at the image (loss with shuffled images equals loss with the right ones).
    """

    trainer: Mapping[str, Any] = field(default_factory=dict)
    max_length: int = 160
    freeze_vision_tower: bool = True


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


#: LoRA targets: the attention and MLP projections of a decoder layer; they are looked up inside
#: the language model only (a plain list would also hit the vision encoder's projections).
LANGUAGE_MODEL_LORA_TARGETS: tuple[str, ...] = DEFAULT_LORA_MODULES


@dataclass(frozen=True)
class LoRAConfig:
    """LoRA adapters for DPO (peft).

    Attributes:
        r: Rank of the adapters.
        alpha: Scaling numerator (``lora_alpha``).
        dropout: Dropout on the adapter input.
        target_modules: Names of the language model's modules that get adapters (its
            attention and MLP projections by default); resolved inside the family's language
            model, so the vision encoder never gets one.
        target_regex: A PEFT ``target_modules`` regex over full module names that replaces
            the family's resolution (``null``: resolved from ``target_modules``).
        merge: Merge the adapters into the weights when saving, so the next stage loads a plain
            model; ``false`` saves the adapter alone (with the base model's path in its config).
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = LANGUAGE_MODEL_LORA_TARGETS
    target_regex: str | None = None
    merge: bool = True


@dataclass(frozen=True)
class DPOConfig:
    """DPO training of one iteration (TRL ``DPOTrainer``).

    Attributes:
        trainer: Keyword arguments for ``trl.DPOConfig``, passed through as is (``beta``,
            ``loss_type``, ``loss_weights``, ``learning_rate``, ``num_train_epochs``...); the
            project's defaults fill what is not given. TRL's ``sft`` loss term is the mean
            token NLL of the chosen answer, RLAIF-V's SFT term its summed NLL: a weight ``w``
            here is RLAIF-V's ``w / |y|`` (``|y|`` the chosen answer's tokens).
        max_length: Token budget per prompt + answer; longer pairs are an error, never cut.
        lora: LoRA adapters instead of full fine-tuning (``null``: full fine-tuning).
        freeze_vision_tower: Train the projector and language model only (full fine-tuning).
        precompute_ref: Compute the reference log-probs once before training and free the
            reference model; ``false`` keeps TRL's live reference model (for comparison).
            With POVID's online noise rejection the chosen and fixed rejected answers' are
            computed once (the first time each example is seen) and kept, while the noise
            rejection's, new every epoch, are computed at each step: the reference model
            then stays resident (with LoRA it is the policy with its adapters disabled).
        deepspeed: Path of a DeepSpeed JSON config (``configs/deepspeed/zero2.json``), GPU runs.
        keep_checkpoints: Keep the intermediate checkpoints after a successful run (they are
            what a killed run resumes from; by default removed once the model is saved).
        global_batch_size: The pairs per optimizer step the preset intends (``null``: not
            stated). Checked when the config loads against ``per_device_train_batch_size`` x
            ``gradient_accumulation_steps`` x the DPO task's GPUs (``kubernetes.trainjob``
            nodes x GPUs per node, else ``kubernetes.train`` or ``kubernetes.gpu``
            accelerators): a mismatch is an error naming the key.
        projector_learning_rate: Train the vision-language projector (the family's projector
            parts, :mod:`mmrlaif.models.families`) at this learning rate, in its own
            optimizer group (same schedule, warmup and weight decay as the rest), while
            ``trainer.learning_rate`` applies to everything else; POVID trains LLaVA's projector
            at 2e-5 beside LoRA at 1e-7. With LoRA the projector modules are trained in full
            (PEFT ``modules_to_save``; a projector part that is a bare parameter, such as
            LLaVA-NeXT's ``image_newline``, stays frozen); ``null``: one learning rate (with
            LoRA the projector stays frozen).
    """

    trainer: Mapping[str, Any] = field(default_factory=dict)
    global_batch_size: int | None = None
    projector_learning_rate: float | None = None
    max_length: int = 160
    lora: LoRAConfig | None = None
    freeze_vision_tower: bool = True
    precompute_ref: bool = True
    deepspeed: str | None = None
    keep_checkpoints: bool = False

    def __post_init__(self) -> None:
        if self.projector_learning_rate is not None and not self.projector_learning_rate > 0:
            raise ConfigError(
                f"projector_learning_rate: must be > 0, got {self.projector_learning_rate}"
            )


#: The POVID pair sources.
POVID_SOURCES: tuple[str, ...] = ("povid_text", "povid_noise")


def _check_sources(sources: tuple[str, ...]) -> None:
    unknown = sorted(set(sources) - set(POVID_SOURCES))
    if unknown or not sources:
        what = f"unknown {', '.join(unknown)}" if unknown else "empty"
        raise ConfigError(f"sources: {what} (use {', '.join(POVID_SOURCES)})")


@dataclass(frozen=True)
class POVIDStageConfig:
    """One stage of POVID's schedule: one iteration of the POVID pipeline.

    Attributes:
        sources: The rejected answers of the stage (``povid_text``, ``povid_noise``).
        num_train_epochs: DPO epochs of the stage (replaces ``dpo.trainer.num_train_epochs``).
    """

    sources: tuple[str, ...] = POVID_SOURCES
    num_train_epochs: float = 1.0

    def __post_init__(self) -> None:
        _check_sources(self.sources)
        if not self.num_train_epochs > 0:
            raise ConfigError(f"num_train_epochs: must be > 0, got {self.num_train_epochs}")


@dataclass(frozen=True)
class POVIDConfig:
    """POVID pair sources.

    Attributes:
        sources: Which rejected answers to build: ``povid_text`` (hallucinations injected into
            the ground-truth answer) and/or ``povid_noise`` (the policy's answer on a
            diffusion-noised image).
        injector: ``cooccurrence`` (inserts a co-occurring absent object; no LLM needed) or
            ``llm`` (an instruct LLM rewrites the answer, as the paper's GPT-4V step).
        llm_name_or_path: The instruct LLM of the ``llm`` injector (its served name when
            ``llm_endpoint`` is set).
        llm_endpoint: Base URL of an OpenAI-compatible API serving that LLM (e.g. vLLM's
            ``http://host:8000/v1``): the ``llm`` injector then calls
            ``<llm_endpoint>/chat/completions`` (greedy) with model ``llm_name_or_path`` instead of
            loading it; API key from the ``OPENAI_API_KEY`` environment variable, if set.
            ``None``: load it in-process.
        noise_step: Forward-diffusion step of the image noise (the paper: 500 of 1000).
        noise_rejection: How the ``povid_noise`` rejected answer is built. ``online`` (the
            reference's ``tool/dpo_trainer_inherent.py``): at every DPO step the image is
            noised afresh (a new draw every epoch, seeded from the run seed, the epoch and the
            prompt), the model is run teacher-forced on the ground-truth answer with the
            noised image, and the per-position arg-max tokens are the rejected answer (the
            chosen answer's length), scored with the clean image at the chosen answer's
            positions; the pairs table then holds a ``povid_noise`` row with an empty
            ``rejected``. ``offline``: the policy answers the noised image greedily when the
            pairs are built (at most ``max_new_tokens``) and that answer is the rejected one.
        noise_ref_tokens: Online: the tokens the reference model scores for the noise
            rejection: ``own`` (its own arg-max under the same noised image, as the reference
            code, which runs the same teacher-forced pass through each model) or ``policy``
            (the policy's arg-max, so both models score one rejected answer).
        clamp_noise: Clip the noised pixels to [0, 1] before the 8-bit conversion. The
            reference does not (``ToPILImage`` of the unclipped tensor: about a third of the
            pixels wrap around, e.g. -0.3 / 255 becomes 0 and -1.5 / 255 becomes 255); ``true``
            is a milder noise.
        max_new_tokens: Offline: generation budget of the answer on the noised image.
        seed: Seed of the injections and of the offline noise (the online noise derives from
            the DPO run's seed).
        stages: POVID's schedule, one stage per iteration of the POVID pipeline (iteration i
            runs stage i: its sources and its DPO epochs); the length must equal
            ``pipeline.iterations``. Empty: every iteration uses ``sources`` and
            ``dpo.trainer``'s epochs.
    """

    sources: tuple[str, ...] = ("povid_text", "povid_noise")
    injector: Literal["cooccurrence", "llm"] = "cooccurrence"
    llm_name_or_path: str | None = None
    llm_endpoint: str | None = None
    noise_step: int = 500
    noise_rejection: Literal["online", "offline"] = "online"
    noise_ref_tokens: Literal["own", "policy"] = "own"
    clamp_noise: bool = False
    max_new_tokens: int = 48
    seed: int = 0
    stages: tuple[POVIDStageConfig, ...] = ()

    def __post_init__(self) -> None:
        _check_sources(self.sources)
        if not 0 <= self.noise_step < 1000:
            raise ConfigError(f"noise_step: must be in [0, 1000), got {self.noise_step}")


@dataclass(frozen=True)
class PipelineConfig:
    """The iterative pipeline.

    Attributes:
        method: ``rlaifv`` (on-policy sampling + AI feedback) or ``povid``.
        iterations: Rounds of sample -> label -> pairs -> DPO -> evaluate, unrolled at compile
            time.
        select_metric: The figure that decides which policy an iteration carries forward (the
            new one or the incumbent). On the toy world's validation split: ``object_f1``
            (harmonic mean of 1 - ObjHal and Cover), ``object_hal``, ``response_hal`` (lower is
            better) or ``cover``. On a held-out slice of a real benchmark (the first
            ``select_items`` items of its data root in ``eval.benchmarks.data``, scored by the
            same code as the reports, which then leave those items out): a benchmark headline
            figure such as ``amber_object_f1`` / ``object_halbench_object_f1`` (harmonic mean
            of 1 - the mention-level hallucination rate and the object recall),
            ``object_halbench_response_hallucination_rate``, ``amber_chair``, ``mmhal_score``
            or ``pope_adversarial_f1`` (:data:`BENCHMARK_SELECT_METRICS`). ``latest`` carries the
            newly trained policy forward whatever it scores. A real model (a hub id) cannot
            select on the toy world: that is an error naming this key.
        select_items: Items of the selection benchmark's held-out slice (per POPE split).
        select_every: Also weigh the DPO run's intermediate checkpoints: one is saved every
            this many optimizer steps (a value below 1: that fraction of the run's steps, e.g.
            0.0625 = a quarter epoch of 4 epochs, the reference's grid), each is scored on the
            selection figure with the final model, and the best of them is the iteration's
            new policy (``null``: the final model only). Each checkpoint is a full model on
            the artifact store until the iteration ends.
        name: Pipeline name in KFP and the parent run's name prefix in MLflow.
        shards: RLAIF-V: split each iteration's prompts into this many shards, sampled and
            labeled by parallel tasks (``dsl.ParallelFor``) and merged before the pairs; the
            results do not depend on it (per-(prompt, sample) seeds).
        max_parallel_shards: Shards running at once (0: all).
        shard_cache: A folder or ``s3://`` prefix where each finished shard is kept under a
            key of its inputs (prompts, policy, settings); a rerun reuses finished shards and
            redoes only missing or partial ones (``null``: no reuse).
    """

    method: Literal["rlaifv", "povid"] = "rlaifv"
    iterations: int = 3
    select_metric: str = "object_f1"
    select_items: int = 100
    select_every: float | None = None
    name: str = "mmrlaif"
    shards: int = 1
    max_parallel_shards: int = 0
    shard_cache: str | None = None

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ConfigError(f"iterations: must be >= 1, got {self.iterations}")
        if self.shards < 1:
            raise ConfigError(f"shards must be >= 1, got {self.shards}")
        if self.max_parallel_shards < 0:
            raise ConfigError(f"max_parallel_shards must be >= 0, got {self.max_parallel_shards}")
        known = (*TOY_SELECT_METRICS, *BENCHMARK_SELECT_METRICS, LATEST_METRIC)
        if self.select_metric not in known:
            raise ConfigError(
                f"select_metric: unknown metric {self.select_metric!r}; one of {', '.join(known)}"
            )
        if self.select_items < 1:
            raise ConfigError(f"select_items: must be >= 1, got {self.select_items}")
        if self.select_every is not None and self.select_metric == LATEST_METRIC:
            raise ConfigError(
                "select_every: checkpoints are weighed by select_metric, and 'latest' weighs "
                "nothing (the final model goes on); pick a metric or drop select_every"
            )
        if self.select_every is not None and not (
            0 < self.select_every < 1 or float(self.select_every).is_integer()
        ):
            raise ConfigError(
                f"select_every: a whole number of steps or a fraction in (0, 1), "
                f"got {self.select_every}"
            )


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow tracking.

    Attributes:
        uri: Tracking URI; ``MLFLOW_TRACKING_URI`` in the environment wins; neither: a local
            store under the run folder (nothing to start).
        experiment: Experiment name.
        registered_model: Name the final policy is registered under (``null``: not registered).
        pairs_sample: Pairs logged per iteration with their claims and verdicts.
        register_iterations: Register every iteration's trained policy as a model version
            (tagged with its metrics and lineage), not only the final one.
        gate: The promotion gate run on the final policy.
    """

    uri: str | None = None
    experiment: str = "mmrlaif"
    registered_model: str | None = "mmrlaif-policy"
    pairs_sample: int = 20
    register_iterations: bool = True
    gate: GateConfig = field(default_factory=GateConfig)
