"""The tiny LLaVA-style VLM of the toy world, built locally from a config (no download)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from mmrlaif.config import TinyVLMConfig
from mmrlaif.models.chat import CHAT_TEMPLATE, IMAGE_TOKEN
from mmrlaif.toyworld.tokenizer import train_tokenizer, world_corpus

logger = logging.getLogger(__name__)

# CLIP's normalisation constants, so the tiny model preprocesses exactly as a real LLaVA does.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def build_processor(
    tokenizer: PreTrainedTokenizerFast, image_size: int, patch_size: int
) -> LlavaProcessor:
    """A LLaVA processor: CLIP image preprocessing plus the tokenizer and chat template."""
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token=IMAGE_TOKEN,
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_vlm(
    cfg: TinyVLMConfig, image_size: int, seed: int
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """Build the tiny VLM and its processor, with weights initialised from ``seed``.

    Args:
        cfg: Shape of the vision tower and decoder.
        image_size: Side of the world's square images.
        seed: Seed of the weight initialisation.

    Returns:
        The model (float32, eval mode) and its processor.
    """
    if image_size % cfg.patch_size:
        raise ValueError(
            f"image_size {image_size} is not a multiple of patch_size {cfg.patch_size}"
        )
    tokenizer = train_tokenizer(world_corpus(), vocab_size=cfg.vocab_size)
    processor = build_processor(tokenizer, image_size, cfg.patch_size)
    n_image_tokens = (image_size // cfg.patch_size) ** 2
    vision = CLIPVisionConfig(
        hidden_size=cfg.vision_hidden,
        intermediate_size=cfg.vision_hidden * 2,
        num_hidden_layers=cfg.vision_layers,
        num_attention_heads=cfg.vision_heads,
        image_size=image_size,
        patch_size=cfg.patch_size,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.text_hidden,
        intermediate_size=cfg.text_intermediate,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.text_heads,
        num_key_value_heads=cfg.text_heads,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=n_image_tokens,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("built tiny VLM: %.2fM parameters, %d image tokens", n_params / 1e6, n_image_tokens)
    return model.eval(), processor


def build_tiny_causal_lm(
    corpus: list[str],
    hidden: int = 64,
    layers: int = 2,
    seed: int = 0,
    special_tokens: Sequence[str] = (),
    chat_template: str | None = None,
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A tiny text-only Llama and a tokenizer trained on ``corpus`` (for the LLM-based labeling
    stages in tests and the toy world; real runs load an instruct model).

    Args:
        corpus: Texts the tokenizer is trained on.
        hidden: Hidden size.
        layers: Decoder layers.
        seed: Seed of the weight initialisation.
        special_tokens: Extra special tokens (e.g. a chat template's turn markers), in the
            vocabulary before the model is built.
        chat_template: The tokenizer's chat template (``None``: the trained tokenizer's).
    """
    tokenizer = train_tokenizer(corpus, vocab_size=1024)
    tokenizer.padding_side = "left"
    if special_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": list(special_tokens)})
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval(), tokenizer
