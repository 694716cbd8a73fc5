"""The labeling stage: samples + prompts tables in, feedback table out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mmrlaif.config import ConfigError, LabelingConfig, ModelConfig
from mmrlaif.io import read_rows, write_table
from mmrlaif.labeling.claims import LexiconClaimExtractor, TemplateQuestionBuilder
from mmrlaif.labeling.feedback import FeedbackStats, label_samples
from mmrlaif.labeling.http_labeler import OpenAIYesNoLabeler
from mmrlaif.labeling.labeler import VLMYesNoLabeler, YesNoLabeler
from mmrlaif.labeling.llm import LLMClaimExtractor, LLMQuestionBuilder, text_generators
from mmrlaif.models.load import load_vlm
from mmrlaif.toyworld import toy_lexicon

#: Labelers that are one of the pipeline's own policies.
SELF_LABELERS = ("policy", "initial")


def make_labeler(policy: str | Path, model_cfg: ModelConfig, cfg: LabelingConfig) -> YesNoLabeler:
    """The configured labeler (``LabelingConfig`` has checked its path and endpoint)."""

    if cfg.labeler == "openai":
        return OpenAIYesNoLabeler(cfg.endpoint, cfg.labeler_name_or_path)
    # "initial": the pipeline hands the starting policy in as ``policy``
    path = policy if cfg.labeler in SELF_LABELERS else cfg.labeler_name_or_path
    # the self-labelers are the policy's family; another labeler model is detected on its own
    family = model_cfg.family if cfg.labeler in SELF_LABELERS else None
    model, processor = load_vlm(path, model_cfg.dtype, model_cfg.trust_remote_code, family=family)
    return VLMYesNoLabeler(model, processor, cfg.batch_size, cfg.prefix_cache, family)


def make_divide(cfg: LabelingConfig, model_cfg: ModelConfig):
    """The configured claim extractor and question builder.

    The ``llm`` parts' LLM is loaded here from ``labeling.llm_name_or_path``, or, when
    ``labeling.llm_endpoint`` is set, called at ``<llm_endpoint>/chat/completions`` under that
    served name (nothing is loaded then); the question builder uses
    ``labeling.llm_question_name_or_path`` / ``llm_question_endpoint`` where they are set (the
    reference's separate "changeq" model), the same LLM otherwise (loaded once, one client).
    Both sample with ``labeling.llm_temperature`` / ``llm_top_p`` / ``llm_top_k`` /
    ``llm_max_new_tokens``, seeded by ``labeling.llm_seed``, in ``labeling.llm_prompt_format``.

    Raises:
        ConfigError: Naming ``labeling.llm_name_or_path`` when an LLM part has no model.
        ValueError: When an LLM loaded here has no chat template.
    """
    extractor, builder = None, None
    if "llm" in (cfg.extractor, cfg.question_builder):
        question_llm = cfg.llm_question_name_or_path or cfg.llm_name_or_path
        needed = [cfg.llm_name_or_path] if cfg.extractor == "llm" else []
        needed += [question_llm] if cfg.question_builder == "llm" else []
        if not all(needed):
            what = "served model name at labeling.llm_endpoint" if cfg.llm_endpoint else "LLM"
            raise ConfigError(
                f"labeling.llm_name_or_path is required for the llm extractor/builder (its {what})"
            )
        factories: dict[tuple[str, str | None], Callable[[int], Callable[[str], str]]] = {}

        def generate(name: str, endpoint: str | None) -> Callable[[str], str]:
            if (name, endpoint) not in factories:  # one model loaded, one client, per LLM
                factories[name, endpoint] = text_generators(
                    name,
                    endpoint,
                    model_cfg.trust_remote_code,
                    temperature=cfg.llm_temperature,
                    top_p=cfg.llm_top_p,
                    top_k=cfg.llm_top_k,
                    seed=cfg.llm_seed,
                )
            return factories[name, endpoint](cfg.llm_max_new_tokens)

        if cfg.extractor == "llm":
            extractor = LLMClaimExtractor(
                generate(cfg.llm_name_or_path, cfg.llm_endpoint),
                prompt_format=cfg.llm_prompt_format,
                max_words=cfg.llm_max_words,
            )
        if cfg.question_builder == "llm":
            builder = LLMQuestionBuilder(
                generate(question_llm, cfg.llm_question_endpoint or cfg.llm_endpoint),
                prompt_format=cfg.llm_prompt_format,
            )
    if extractor is None:
        extractor = LexiconClaimExtractor(toy_lexicon())
    if builder is None:
        builder = TemplateQuestionBuilder()
    return extractor, builder


def label_stage(
    policy: str | Path,
    model_cfg: ModelConfig,
    cfg: LabelingConfig,
    samples_table: str | Path,
    prompts_table: str | Path,
    feedback_table: str | Path,
) -> FeedbackStats:
    """Label the samples table and write the feedback table."""
    extractor, builder = make_divide(cfg, model_cfg)
    labeler = make_labeler(policy, model_cfg, cfg)
    rows, stats = label_samples(
        read_rows(samples_table),
        read_rows(prompts_table),
        extractor,
        builder,
        labeler,
        cfg.reject_threshold,
    )
    write_table(rows, feedback_table)
    return stats
