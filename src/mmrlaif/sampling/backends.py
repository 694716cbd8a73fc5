"""Sampling backends behind one interface: ``transformers`` generates in-process;
``openai`` asks an OpenAI-compatible endpoint such as vLLM (:mod:`mmrlaif.sampling.endpoint`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from mmrlaif.config import ConfigError, ModelConfig, SamplingConfig
from mmrlaif.models.load import load_vlm
from mmrlaif.sampling.endpoint import OpenAISamplingBackend
from mmrlaif.sampling.sampler import SamplingStats, sample_candidates


class SamplingBackend(Protocol):
    """Generates the samples table rows for a list of prompts."""

    def sample(
        self, prompts: Sequence[Mapping[str, Any]], cfg: SamplingConfig
    ) -> tuple[list[dict[str, Any]], SamplingStats]:
        """``cfg.n`` seeded candidates per prompt, as rows of the samples table."""
        ...


class TransformersBackend:
    """Sampling with ``transformers`` ``generate`` on a locally loaded policy."""

    def __init__(self, policy: str | Path, model_cfg: ModelConfig) -> None:
        self.policy = str(policy)
        self.model, self.processor = load_vlm(
            policy, model_cfg.dtype, model_cfg.trust_remote_code, family=model_cfg.family
        )

    def sample(
        self, prompts: Sequence[Mapping[str, Any]], cfg: SamplingConfig
    ) -> tuple[list[dict[str, Any]], SamplingStats]:
        """See :func:`mmrlaif.sampling.sampler.sample_candidates`."""
        return sample_candidates(self.model, self.processor, prompts, cfg, self.policy)


def make_backend(
    policy: str | Path, model_cfg: ModelConfig, cfg: SamplingConfig
) -> SamplingBackend:
    """The backend named by ``cfg.backend``.

    ``openai`` does not load ``policy``: the endpoint serves the model (it should serve the
    current policy for on-policy sampling).

    Raises:
        ConfigError: Naming ``sampling.backend`` for a backend this build does not have, or
            ``sampling.endpoint`` when the ``openai`` backend has none.
    """
    if cfg.backend == "transformers":
        return TransformersBackend(policy, model_cfg)
    if cfg.backend == "openai":
        if not cfg.endpoint:
            raise ConfigError("sampling.endpoint: required when sampling.backend is 'openai'")
        return OpenAISamplingBackend(cfg.endpoint, cfg.endpoint_model, cfg.api_key_env)
    raise ConfigError(f"sampling.backend: {cfg.backend!r} is not available")
