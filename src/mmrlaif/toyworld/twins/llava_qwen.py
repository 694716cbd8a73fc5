"""Twin architectures: LLaVA-1.5, LLaVA-NeXT, Qwen2.5-VL and Qwen3-VL (configs and processors)."""

from __future__ import annotations

from typing import Any

from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextImageProcessorPil,
    LlavaNextProcessor,
    LlavaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessorPil,
    Qwen2VLVideoProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
    Qwen3VLVideoProcessor,
)

from mmrlaif.toyworld.twins.templates import (
    _LLAVA_TEMPLATE,
    _QWEN2_5_VL_TEMPLATE,
    _QWEN3_VL_TEMPLATE,
)

# Normalisation constants of the real image processors.
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_HALF = (0.5, 0.5, 0.5)

# Upper bound on each trained vocabulary (training stops earlier when merges run out).

#: What a family builder returns: the model class, its config and the processor.
_Built = tuple[type[PreTrainedModel], Any, ProcessorMixin]


def _ids(tokenizer: PreTrainedTokenizerBase, *tokens: str) -> list[int]:
    ids = tokenizer.convert_tokens_to_ids(list(tokens))
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        raise AssertionError(f"tokens missing from the twin's vocabulary: {tokens}")
    return ids


def _llama_text(tokenizer: PreTrainedTokenizerBase, **overrides: Any) -> dict[str, Any]:
    """A two-layer Llama text config (Vicuna-7B's structure: MHA, silu, RMSNorm 1e-5)."""
    config: dict[str, Any] = {
        "model_type": "llama",
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "hidden_act": "silu",
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }
    config.update(overrides)
    return config


def _clip_vision(image_size: int) -> Any:

    # CLIP ViT-L/14-336's structure: patch 14, quick_gelu, pre-layernorm; two layers so that
    # vision_feature_layer=-2 (the penultimate layer, as LLaVA uses) is a real layer.
    return CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=14,
        projection_dim=32,
        hidden_act="quick_gelu",
    )


def _build_llava(tokenizer: PreTrainedTokenizerBase) -> _Built:
    image_size = 56  # 4 x 4 patches of 14: 16 image tokens (336 -> 576 in the real model)
    text = _llama_text(tokenizer)
    text.pop("model_type")
    config = LlavaConfig(
        vision_config=_clip_vision(image_size),
        text_config=LlamaConfig(**text),
        image_token_index=_ids(tokenizer, "<image>")[0],
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_seq_length=(image_size // 14) ** 2,
        multimodal_projector_bias=True,
        tie_word_embeddings=False,
    )
    config.pad_token_id = tokenizer.pad_token_id
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
            image_mean=list(_CLIP_MEAN),
            image_std=list(_CLIP_STD),
        ),
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
        chat_template=_LLAVA_TEMPLATE,
    )
    return LlavaForConditionalGeneration, config, processor


def _build_llava_next(tokenizer: PreTrainedTokenizerBase) -> _Built:

    # llava-v1.6's AnyRes: a 336 px base tile plus a grid from the pinpoints. Here the tile is
    # 28 px (2 x 2 patches of 14) and the pinpoints are the real ones scaled by 28/336, so a
    # 64 x 64 image is a 2 x 2 grid of tiles plus the base tile: 4 + 16 + 4 newline = 24 tokens.
    tile = 28
    pinpoints = [[tile, 2 * tile], [2 * tile, tile], [2 * tile, 2 * tile], [3 * tile, tile]]
    pinpoints.append([tile, 3 * tile])
    text = _llama_text(tokenizer)
    text.pop("model_type")
    config = LlavaNextConfig(
        vision_config=_clip_vision(tile),
        text_config=LlamaConfig(**text),
        image_token_index=_ids(tokenizer, "<image>")[0],
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_grid_pinpoints=pinpoints,
        image_seq_length=(tile // 14) ** 2,
        tie_word_embeddings=False,
    )
    config.pad_token_id = tokenizer.pad_token_id
    processor = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessorPil(
            size={"shortest_edge": tile},
            crop_size={"height": tile, "width": tile},
            image_grid_pinpoints=pinpoints,
            image_mean=list(_CLIP_MEAN),
            image_std=list(_CLIP_STD),
        ),
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
        chat_template=_LLAVA_TEMPLATE,
    )
    return LlavaNextForConditionalGeneration, config, processor


def _qwen_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    image, video, start, end = _ids(
        tokenizer, "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"
    )
    return {
        "image_token_id": image,
        "video_token_id": video,
        "vision_start_token_id": start,
        "vision_end_token_id": end,
    }


def _build_qwen2_5_vl(tokenizer: PreTrainedTokenizerBase) -> _Built:
    endoftext, im_end = _ids(tokenizer, "<|endoftext|>", "<|im_end|>")
    # Qwen2.5-VL-7B's structure: GQA, mrope (sections [16, 24, 24] of head_dim 128 -> [2, 3, 3]
    # of 16), a windowed ViT with full attention in its last block, patch 14, 2 x 2 merging,
    # temporal patches of 2. The window (56 px = 2 x 2 merged tokens) is smaller than an image
    # (112 px after resizing), so window attention really splits it.
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1000000.0,
                "mrope_section": [2, 3, 3],
            },
            "bos_token_id": endoftext,
            "eos_token_id": im_end,
            "pad_token_id": endoftext,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [1],
            "out_hidden_size": 64,
            "tokens_per_second": 2,
        },
        tie_word_embeddings=False,
        **_qwen_ids(tokenizer),
    )
    # Images are resized to about 112 x 112 pixels (8 x 8 patches): 16 image tokens.
    pixels = {"shortest_edge": 112 * 112, "longest_edge": 112 * 112}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(
            size=pixels, patch_size=14, temporal_patch_size=2, merge_size=2
        ),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(
            size=pixels, patch_size=14, temporal_patch_size=2, merge_size=2
        ),
        chat_template=_QWEN2_5_VL_TEMPLATE,
    )
    return Qwen2_5_VLForConditionalGeneration, config, processor


def _build_qwen3_vl(tokenizer: PreTrainedTokenizerBase) -> _Built:
    endoftext, im_end = _ids(tokenizer, "<|endoftext|>", "<|im_end|>")
    # Qwen3-VL-2B's structure: GQA with explicit head_dim, interleaved mrope (sections
    # [24, 20, 20] of head_dim 128 -> [4, 2, 2] of 16), tied embeddings; a ViT with learned,
    # interpolated position embeddings (an 8 x 8 table), patch 16, 2 x 2 merging and a deepstack
    # merger feeding its first block's features into the first text layer.
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5000000.0,
                "mrope_section": [4, 2, 2],
                "mrope_interleaved": True,
            },
            "bos_token_id": endoftext,
            "eos_token_id": im_end,
            "pad_token_id": endoftext,
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": 64,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [0],
        },
        tie_word_embeddings=True,
        **_qwen_ids(tokenizer),
    )
    # Images are resized to about 128 x 128 pixels (8 x 8 patches of 16): 16 image tokens.
    pixels = {"shortest_edge": 128 * 128, "longest_edge": 128 * 128}
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(
            size=pixels,
            patch_size=16,
            temporal_patch_size=2,
            merge_size=2,
            image_mean=list(_HALF),
            image_std=list(_HALF),
        ),
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(
            size=pixels,
            patch_size=16,
            temporal_patch_size=2,
            merge_size=2,
            image_mean=list(_HALF),
            image_std=list(_HALF),
        ),
        chat_template=_QWEN3_VL_TEMPLATE,
    )
    return Qwen3VLForConditionalGeneration, config, processor
