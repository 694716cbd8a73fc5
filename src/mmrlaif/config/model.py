"""The base policy's sections: the synthetic toy world, the model, and its supervised
fine-tuning (``world``, ``model``, ``sft``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mmrlaif.config.strict import ConfigError
from mmrlaif.families import FAMILIES, parse_twin_spec


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
            (:mod:`mmrlaif.toyworld.twins`), built on the spot, to rehearse a real preset on CPU.
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
