import pytest
import torch
from PIL import Image

from mmrlaif.models.chat import ChatFormat, user_message
from mmrlaif.models.load import ModelLoadError, load_vlm, save_model
from mmrlaif.toyworld.tokenizer import train_tokenizer, world_corpus


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(world_corpus())


def test_chat_template_renders_the_shared_format(tokenizer):
    conversation = [*user_message("Describe the image."), {"role": "assistant", "content": "A b."}]
    rendered = tokenizer.apply_chat_template(conversation, tokenize=False)
    assert rendered == "USER: <image>\nDescribe the image. ASSISTANT: A b.</s>"
    prompt = tokenizer.apply_chat_template(
        user_message("Q?"), tokenize=False, add_generation_prompt=True
    )
    assert prompt == "USER: <image>\nQ? ASSISTANT:"


def test_prompt_tokens_are_a_prefix_and_decode_round_trips(tokenizer):
    question = "Is there a coffee cup in the image? Please answer yes or no."
    prompt = f"USER: <image>\n{question} ASSISTANT:"
    full = prompt + " Yes</s>"
    p_ids = tokenizer(prompt)["input_ids"]
    f_ids = tokenizer(full)["input_ids"]
    assert f_ids[: len(p_ids)] == p_ids
    assert f_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(f_ids) == full
    # the answer word is one token with its leading space, as the yes/no labeler reads it
    assert tokenizer.convert_ids_to_tokens(f_ids[len(p_ids)]) == "ĠYes"


def test_special_tokens(tokenizer):
    assert tokenizer.pad_token_id == 0
    for token in ("<pad>", "<unk>", "<s>", "</s>", "<image>"):
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id or token == "<unk>"


def test_save_and_load_round_trip_exactly(tiny_model, tmp_path):
    model, processor = tiny_model
    path = save_model(model, processor, tmp_path / "m")
    loaded, loaded_processor = load_vlm(str(path))
    image = Image.new("RGB", (64, 64), (200, 40, 40))
    enc = loaded_processor(
        text=["USER: <image>\nDescribe the image. ASSISTANT:"], images=[image], return_tensors="pt"
    )
    n_image = int((enc["input_ids"] == model.config.image_token_index).sum())
    assert n_image == model.config.image_seq_length == 16
    with torch.no_grad():
        assert torch.equal(model(**enc).logits, loaded(**enc).logits)
    assert loaded_processor.tokenizer.padding_side == "left"


def test_same_seed_same_weights(tiny_model):
    from mmrlaif.toyworld.tiny import build_tiny_vlm
    from tests.conftest import SMALL_MODEL

    model, _ = tiny_model
    again, _ = build_tiny_vlm(SMALL_MODEL, 64, seed=0)
    other, _ = build_tiny_vlm(SMALL_MODEL, 64, seed=1)
    a, b, c = (dict(m.named_parameters()) for m in (model, again, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_missing_model_path_is_named(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_vlm(str(tmp_path / "nope"))
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        load_vlm(str(tmp_path), dtype="float8")


def test_chat_format_of_the_tiny_model(tiny_model):
    _, processor = tiny_model
    chat = ChatFormat(processor)
    assert chat.prompt("Q?") == "USER: <image>\nQ? ASSISTANT:"
    assert chat.completion("A b.") == " A b.</s>"
    assert chat.end_of_turn == "</s>"
    assert chat.stop_token_ids == [processor.tokenizer.eos_token_id]
    assert chat.add_special_tokens  # the template writes no BOS of its own
    assert chat.prefix + chat.suffix("Q?") == chat.prompt("Q?")
    # a completion's ids are the continuation of its prompt's ids, end of turn last
    (ids,) = chat.completion_ids(["Q?"], ["A b."])
    full = processor.tokenizer(chat.prompt("Q?") + " A b.</s>")["input_ids"]
    assert full[-len(ids) :] == ids and ids[-1] == processor.tokenizer.eos_token_id


def test_chat_format_needs_a_template(tiny_model):
    from mmrlaif.models.chat import ChatFormatError

    _, processor = tiny_model
    processor.chat_template = None
    with pytest.raises(ChatFormatError, match="has no chat template"):
        ChatFormat(processor)
