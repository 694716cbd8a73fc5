"""Twin architectures: Idefics3, SmolVLM, Gemma 3 and InternVL (configs and processors)."""

from __future__ import annotations

from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessorPil,
    Gemma3Processor,
    GotOcr2ImageProcessorPil,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    InternVLConfig,
    InternVLForConditionalGeneration,
    InternVLProcessor,
    InternVLVideoProcessor,
    PreTrainedTokenizerBase,
    SiglipVisionConfig,
    SmolVLMConfig,
    SmolVLMForConditionalGeneration,
    SmolVLMImageProcessorPil,
    SmolVLMProcessor,
    SmolVLMVideoProcessor,
)

from mmrlaif.toyworld.twins.llava_qwen import (
    _HALF,
    _IMAGENET_MEAN,
    _IMAGENET_STD,
    _Built,
    _ids,
    _llama_text,
)
from mmrlaif.toyworld.twins.templates import (
    _GEMMA3_TEMPLATE,
    _IDEFICS3_TEMPLATE,
    _INTERNVL_TEMPLATE,
    _SMOLVLM_TEMPLATE,
)


def _build_idefics3(tokenizer: PreTrainedTokenizerBase) -> _Built:

    # Idefics3-8B's structure: a SigLIP-style encoder on tiles (364 px, patch 14 -> 56 px here),
    # pixel shuffle with scale factor 2 (4 x 4 patches -> 4 tokens a tile), a Llama 3 text
    # model; images are resized to a longest edge of 2 tiles and split into a 2 x 2 grid plus a
    # global tile: 5 x 4 = 20 image tokens for a square image.
    tile, patch, scale = 56, 14, 2
    image_seq_len = (tile // patch) ** 2 // scale**2
    end_of_utterance = _ids(tokenizer, "<end_of_utterance>")[0]
    config = Idefics3Config(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": tile,
            "patch_size": patch,
        },
        text_config=_llama_text(
            tokenizer,
            num_key_value_heads=2,
            rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
            eos_token_id=end_of_utterance,
        ),
        scale_factor=scale,
        image_token_id=_ids(tokenizer, "<image>")[0],
        tie_word_embeddings=False,
    )
    config.pad_token_id = tokenizer.pad_token_id
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(
            size={"longest_edge": 2 * tile},
            max_image_size={"longest_edge": tile},
            do_image_splitting=True,
            image_mean=list(_HALF),
            image_std=list(_HALF),
        ),
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=_IDEFICS3_TEMPLATE,
    )
    return Idefics3ForConditionalGeneration, config, processor


def _build_smolvlm(tokenizer: PreTrainedTokenizerBase) -> _Built:

    # SmolVLM-256M's structure: a SigLIP-style encoder on tiles (512 px, patch 16 -> 64 px,
    # patch 8 here), pixel shuffle with scale factor 4 (8 x 8 patches -> 4 tokens a tile), a
    # SmolLM2 (Llama) text model with GQA; images are resized to a longest edge of 2 tiles and
    # split into a 2 x 2 grid plus a global tile: 5 x 4 = 20 image tokens.
    tile, patch, scale = 64, 8, 4
    image_seq_len = (tile // patch) ** 2 // scale**2
    config = SmolVLMConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": tile,
            "patch_size": patch,
        },
        text_config=_llama_text(
            tokenizer,
            num_key_value_heads=2,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
        ),
        scale_factor=scale,
        image_token_id=_ids(tokenizer, "<image>")[0],
        tie_word_embeddings=False,
    )
    config.pad_token_id = tokenizer.pad_token_id
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessorPil(
            size={"longest_edge": 2 * tile},
            max_image_size={"longest_edge": tile},
            do_image_splitting=True,
            image_mean=list(_HALF),
            image_std=list(_HALF),
        ),
        tokenizer=tokenizer,
        video_processor=SmolVLMVideoProcessor(
            size={"longest_edge": 2 * tile},
            max_image_size={"longest_edge": tile},
            image_mean=list(_HALF),
            image_std=list(_HALF),
        ),
        image_seq_len=image_seq_len,
        chat_template=_SMOLVLM_TEMPLATE,
    )
    return SmolVLMForConditionalGeneration, config, processor


def _build_gemma3(tokenizer: PreTrainedTokenizerBase) -> _Built:

    # Gemma 3 4B's structure: a SigLIP encoder (896 px, patch 14 -> 64 px, patch 8 here) whose
    # 8 x 8 patches are average-pooled to mm_tokens_per_image = 16 soft tokens (256 real);
    # a text model with GQA, explicit head_dim, query_pre_attn_scalar, QK-norm, alternating
    # sliding-window (local rope 10k) and full attention (rope 1M with linear scaling 8),
    # tied embeddings scaled by sqrt(hidden).
    image_size, patch, mm_tokens = 64, 8, 16
    boi, eoi, soft = _ids(tokenizer, "<start_of_image>", "<end_of_image>", "<image_soft_token>")
    config = Gemma3Config(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "query_pre_attn_scalar": 16,
            "sliding_window": 32,
            "layer_types": ["sliding_attention", "full_attention"],
            "rope_parameters": {
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {
                    "rope_type": "linear",
                    "factor": 8.0,
                    "rope_theta": 1000000.0,
                },
            },
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config=SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=patch,
            vision_use_head=False,
        ),
        mm_tokens_per_image=mm_tokens,
        boi_token_index=boi,
        eoi_token_index=eoi,
        image_token_index=soft,
        tie_word_embeddings=True,
    )
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(
            size={"height": image_size, "width": image_size},
            image_mean=list(_HALF),
            image_std=list(_HALF),
        ),
        tokenizer=tokenizer,
        image_seq_length=mm_tokens,
        chat_template=_GEMMA3_TEMPLATE,
    )
    return Gemma3ForConditionalGeneration, config, processor


def _build_internvl(tokenizer: PreTrainedTokenizerBase) -> _Built:

    # InternVL3-1B's structure: an InternViT (448 px, patch 14 -> 64 px, patch 8 here) with
    # layer scale and absolute position embeddings, pixel shuffle with downsample ratio 0.5
    # (8 x 8 patches -> 16 tokens a tile), an MLP projector, a Qwen2 text model with GQA and
    # tied embeddings.
    image_size, patch = 64, 8
    image_seq_length = (image_size // patch) ** 2 // 4
    endoftext, im_end = _ids(tokenizer, "<|endoftext|>", "<|im_end|>")
    config = InternVLConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": [image_size, image_size],
            "patch_size": [patch, patch],
            "use_absolute_position_embeddings": True,
            "layer_scale_init_value": 0.1,
            "norm_type": "layer_norm",
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "bos_token_id": endoftext,
            "eos_token_id": im_end,
            "pad_token_id": endoftext,
            "tie_word_embeddings": True,
        },
        image_token_id=_ids(tokenizer, "<IMG_CONTEXT>")[0],
        image_seq_length=image_seq_length,
        downsample_ratio=0.5,
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=True,
    )
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessorPil(
            size={"height": image_size, "width": image_size},
            image_mean=list(_IMAGENET_MEAN),
            image_std=list(_IMAGENET_STD),
        ),
        tokenizer=tokenizer,
        video_processor=InternVLVideoProcessor(
            size={"height": image_size, "width": image_size},
            image_mean=list(_IMAGENET_MEAN),
            image_std=list(_IMAGENET_STD),
        ),
        image_seq_length=image_seq_length,
        chat_template=_INTERNVL_TEMPLATE,
    )
    return InternVLForConditionalGeneration, config, processor
