import pytest
import torch

from mmrlaif import io
from mmrlaif.config import SFTConfig
from mmrlaif.training.data import IGNORE_INDEX, SupervisedCollator, examples_from_rows
from mmrlaif.training.sft import train_sft, training_arguments

FAST = {
    "num_train_epochs": 1,
    "per_device_train_batch_size": 8,
    "max_steps": 4,
    "logging_steps": 1,
    "disable_tqdm": True,
}


def rows_of(world, n):
    return io.read_rows(world.sft)[:n]


def test_empty_answers_are_skipped_and_counted(small_world):
    rows = rows_of(small_world, 6)
    rows[1]["answer"] = ""
    rows[4]["answer"] = "   "
    examples, skips = examples_from_rows(rows)
    assert len(examples) == 4
    assert skips == {"empty_answer": 2}
    assert rows[1]["example_id"] not in {e.example_id for e in examples}


def test_corrupt_or_missing_image_is_an_error_naming_the_row(small_world):
    rows = rows_of(small_world, 3)
    rows[2]["image"] = {"bytes": b"garbage", "path": None}
    with pytest.raises(io.ImageError, match=rows[2]["example_id"]):
        examples_from_rows(rows)
    rows[2]["image"] = None
    with pytest.raises(io.ImageError, match=f"{rows[2]['example_id']}: image is missing"):
        examples_from_rows(rows)


def test_collator_masks_prompt_and_padding(small_world, tiny_model):
    _, processor = tiny_model
    examples, _ = examples_from_rows(rows_of(small_world, 4))
    batch = SupervisedCollator(processor, max_length=160)(examples)
    tok = processor.tokenizer
    for i, e in enumerate(examples):
        labels = batch["labels"][i]
        kept = labels[labels != IGNORE_INDEX]
        # exactly the completion's tokens are trained on, ending in EOS
        assert tok.decode(kept) == f" {e.answer}</s>"  # the tiny model's LLaVA-1.5 format
        assert kept[-1] == tok.eos_token_id
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()


def test_collator_rejects_overlong_examples(small_world, tiny_model):
    _, processor = tiny_model
    examples, _ = examples_from_rows(rows_of(small_world, 2))
    with pytest.raises(ValueError, match=f"{examples[0].example_id}: .* exceed max_length 10"):
        SupervisedCollator(processor, max_length=10)(examples)


def test_unknown_trainer_argument_is_named(tmp_path):
    with pytest.raises(ValueError, match="sft.trainer: .*num_epochs"):
        training_arguments(SFTConfig(trainer={"num_epochs": 3}), tmp_path, 0)


def test_same_seed_gives_identical_loss_curve(small_world, tmp_path):
    from mmrlaif.toyworld.tiny import build_tiny_vlm
    from tests.conftest import SMALL_MODEL

    rows = rows_of(small_world, 40)
    cfg = SFTConfig(trainer=FAST)
    curves = []
    for run in ("a", "b", "c"):
        model, processor = build_tiny_vlm(SMALL_MODEL, 64, seed=0)
        seed = 1 if run == "c" else 0
        result = train_sft(model, processor, rows, cfg, tmp_path / run, seed=seed)
        curves.append(result.loss_curve)
        assert (result.model_dir / "config.json").is_file()
    assert len(curves[0]) == 4
    assert curves[0] == curves[1]
    assert curves[0] != curves[2]  # another data-order seed gives another curve
    assert curves[0][-1] < curves[0][0]
    assert not list(tmp_path.glob("*/.model.tmp"))


def test_sft_learns_on_a_tiny_set(small_world, tiny_model, tmp_path):
    model, processor = tiny_model
    rows = rows_of(small_world, 16)
    args = FAST | {"max_steps": 40, "learning_rate": 1e-2}
    result = train_sft(model, processor, rows, SFTConfig(trainer=args), tmp_path, seed=0)
    assert result.loss_curve[-1] < 0.5 * result.loss_curve[0]
    assert result.n_examples == 16 and result.skips == {}
    assert not torch.is_grad_enabled() or not model.training


def test_vision_tower_frozen_by_default_and_trainable_on_request(small_world, tmp_path):
    from mmrlaif.toyworld.tiny import build_tiny_vlm
    from tests.conftest import SMALL_MODEL

    rows = rows_of(small_world, 16)
    for freeze in (True, False):
        model, processor = build_tiny_vlm(SMALL_MODEL, 64, seed=0)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        cfg = SFTConfig(trainer=FAST, freeze_vision_tower=freeze)
        train_sft(model, processor, rows, cfg, tmp_path / str(freeze), seed=0)
        after = dict(model.named_parameters())
        vision = [n for n in before if ".vision_tower." in n]
        others = [n for n in before if ".vision_tower." not in n]
        assert vision and others
        if freeze:
            assert all(torch.equal(before[n], after[n]) for n in vision)
        else:  # (post_layernorm is unused by LLaVA, so only the used layers must move)
            patch = next(n for n in vision if "patch_embedding" in n)
            assert not torch.equal(before[patch], after[patch])
        assert not any(torch.equal(before[n], after[n]) for n in others if n.endswith("weight"))


def test_freeze_needs_a_known_family():
    from mmrlaif.models.families import family_of

    with pytest.raises(ValueError, match="'Linear' is not a supported VLM family"):
        family_of(torch.nn.Linear(2, 2))
