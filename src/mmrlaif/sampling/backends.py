"""Sampling backends behind one interface: the transformers backend runs here; a vLLM or
OpenAI-compatible backend (GPU, behind an extra) plugs in with the same signature."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from mmrlaif.config import ConfigError, ModelConfig, SamplingConfig
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
        from mmrlaif.models.load import load_vlm

        self.policy = str(policy)
        self.model, self.processor = load_vlm(policy, model_cfg.dtype, model_cfg.trust_remote_code)

    def sample(
        self, prompts: Sequence[Mapping[str, Any]], cfg: SamplingConfig
    ) -> tuple[list[dict[str, Any]], SamplingStats]:
        """See :func:`mmrlaif.sampling.sampler.sample_candidates`."""
        return sample_candidates(self.model, self.processor, prompts, cfg, self.policy)


def make_backend(
    policy: str | Path, model_cfg: ModelConfig, cfg: SamplingConfig
) -> SamplingBackend:
    """The backend named by ``cfg.backend``.

    Raises:
        ConfigError: Naming ``sampling.backend`` for a backend this build does not have.
    """
    if cfg.backend == "transformers":
        return TransformersBackend(policy, model_cfg)
    raise ConfigError(f"sampling.backend: {cfg.backend!r} is not available")
