"""The tiny twins: the real classes, the real formats, tiny sizes, deterministic builds."""

from __future__ import annotations

import pytest
import torch

from mmrlaif.toyworld.twins import (
    TWIN_FAMILIES,
    TWIN_REFERENCE_CHECKPOINTS,
    build_twin,
    family_requirements,
)

CONVERSATION = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is here?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "A cup."}]},
]

# What each real checkpoint's own chat template renders for CONVERSATION (written out by hand
# from the public templates, not from the twins' code).
RENDERED = {
    "llava": "USER: <image>\nWhat is here? ASSISTANT: A cup. ",
    "llava_next": "USER: <image>\nWhat is here? ASSISTANT: A cup. ",
    "qwen2_5_vl": (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is here?<|im_end|>\n"
        "<|im_start|>assistant\nA cup.<|im_end|>\n"
    ),
    "qwen3_vl": (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is here?<|im_end|>\n"
        "<|im_start|>assistant\nA cup.<|im_end|>\n"
    ),
    "idefics3": (
        "<|begin_of_text|>User:<image>What is here?<end_of_utterance>\n"
        "Assistant: A cup.<end_of_utterance>\n"
    ),
    "smolvlm": (
        "<|im_start|>User:<image>What is here?<end_of_utterance>\n"
        "Assistant: A cup.<end_of_utterance>\n"
    ),
    "gemma3": (
        "<bos><start_of_turn>user\n<start_of_image>What is here?<end_of_turn>\n"
        "<start_of_turn>model\nA cup.<end_of_turn>\n"
    ),
    "internvl": (
        "<|im_start|>user\n<IMG_CONTEXT>\nWhat is here?<|im_end|>\n"
        "<|im_start|>assistant\nA cup.<|im_end|>\n"
    ),
}

CLASSES = {
    "llava": "LlavaForConditionalGeneration",
    "llava_next": "LlavaNextForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
    "idefics3": "Idefics3ForConditionalGeneration",
    "smolvlm": "SmolVLMForConditionalGeneration",
    "gemma3": "Gemma3ForConditionalGeneration",
    "internvl": "InternVLForConditionalGeneration",
}


@pytest.fixture(scope="module", params=TWIN_FAMILIES)
def twin(request):
    return request.param, *build_twin(request.param)


def test_every_family_has_a_reference_and_an_expected_format():
    assert set(TWIN_FAMILIES) == set(RENDERED) == set(CLASSES) == set(TWIN_REFERENCE_CHECKPOINTS)


def test_the_real_classes_at_a_tiny_size(twin):
    family, model, _ = twin
    assert type(model).__name__ == CLASSES[family]
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    assert not model.training


def test_the_chat_template_renders_what_the_real_one_does(twin):
    family, _, processor = twin
    assert processor.apply_chat_template(CONVERSATION, tokenize=False) == RENDERED[family]


def test_special_tokens_are_single_tokens(twin):
    family, _, processor = twin
    tok = processor.tokenizer
    rendered = RENDERED[family]
    for token in tok.all_special_tokens:
        if token in rendered:
            ids = tok(token, add_special_tokens=False)["input_ids"]
            assert len(ids) == 1 and tok.convert_ids_to_tokens(ids[0]) == token, token


def test_bos_as_the_real_tokenizer_adds_it(twin):
    family, _, processor = twin
    tok = processor.tokenizer
    ids = tok("There is a cup.")["input_ids"]
    if family in ("llava", "llava_next", "gemma3", "idefics3"):  # Llama / Gemma / Llama 3: BOS
        assert ids[0] == tok.bos_token_id
    else:  # Qwen2 and SmolLM tokenizers add nothing
        assert tok.bos_token_id is None or ids[0] != tok.bos_token_id


@pytest.mark.parametrize("family", ["llava", "gemma3"])
def test_sentencepiece_layout_with_byte_fallback(family):
    tok = build_twin(family)[1].tokenizer
    # an unseen character falls back to bytes and decodes back exactly
    text = "A zürafa."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert any(t.startswith("<0x") for t in tok.convert_ids_to_tokens(ids))
    assert tok.decode(ids) == text
    if family == "llava":  # Llama: words carry the ▁ marker, the first word too
        assert tok.convert_ids_to_tokens(ids)[0].startswith("▁")


def test_byte_level_bpe_layout_for_qwen():
    tok = build_twin("qwen2_5_vl")[1].tokenizer
    text = "A zürafa\tand 3 cups."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert "Ġcup" in tok.get_vocab() or "Ġcups" in tok.get_vocab()  # GPT-2 byte alphabet


def test_builds_are_deterministic_per_seed():
    a, b, c = (build_twin("qwen2_5_vl", seed=s)[0].state_dict() for s in (0, 0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_unknown_family_is_named():
    with pytest.raises(ValueError, match=r"unknown twin family 'blip2'.*llava"):
        build_twin("blip2")
    assert family_requirements("smolvlm") == ("torchvision", "num2words")
