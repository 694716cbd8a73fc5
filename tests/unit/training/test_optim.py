"""The projector at its own learning rate, with full fine-tuning and beside LoRA."""

import pytest
import torch

from mmrlaif import io
from mmrlaif.config import DPOConfig, LoRAConfig
from mmrlaif.families import FAMILIES
from mmrlaif.models.families import family_of, submodule
from mmrlaif.models.load import load_vlm, save_model
from mmrlaif.pairs.table import online_noise_row, pair_row
from mmrlaif.toyworld.twins import build_twin
from mmrlaif.training.dpo import _povid_trainer_kwargs, _read_pairs, dpo_arguments, lora_config
from mmrlaif.training.optim import split_projector_groups
from mmrlaif.training.povid import POVIDDPOTrainer

ARGS = {"per_device_train_batch_size": 2, "save_strategy": "no", "learning_rate": 1e-7}


def test_projector_parameters_move_to_groups_of_their_own():
    body, projector = torch.nn.Linear(2, 2), torch.nn.Linear(2, 3)
    groups = [
        {"params": [body.weight, projector.weight], "weight_decay": 0.01},
        {"params": [body.bias, projector.bias], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=1e-7)
    moved = split_projector_groups(optimizer, list(projector.parameters()), 2e-5)
    assert moved == 3 * 2 + 3
    got = [
        ([tuple(p.shape) for p in g["params"]], g["lr"], g["weight_decay"])
        for g in optimizer.param_groups
    ]
    assert got == [
        ([(2, 2)], 1e-7, 0.01),
        ([(2,)], 1e-7, 0.0),
        ([(3, 2)], 2e-5, 0.01),  # weight decay as the group it came from
        ([(3,)], 2e-5, 0.0),
    ]


@pytest.fixture()
def llava_dir(tmp_path):
    return save_model(*build_twin("llava"), tmp_path / "llava")


def _povid_trainer(model_dir, prompts, tmp_path, cfg):
    rows = []
    for p in prompts[:2]:
        rows += [
            pair_row(p, "There is a cup.", "There is a cup and a saucer.", "povid_text"),
            online_noise_row(p, "There is a cup."),
        ]
    dataset = _read_pairs(io.write_table(rows, tmp_path / "pairs.parquet"), tmp_path / "hf")
    model, processor = load_vlm(str(model_dir))
    kwargs = _povid_trainer_kwargs(dataset, processor, cfg, 0)
    trainer = POVIDDPOTrainer(
        model=model,
        args=dpo_arguments(cfg, tmp_path / "ckpt", 0),
        processing_class=processor,
        peft_config=lora_config(cfg, model),
        **kwargs,
    )
    trainer.set_projector_learning_rate(cfg.projector_learning_rate, FAMILIES["llava"])
    return trainer


def test_lora_trains_the_projector_at_its_rate_against_a_frozen_reference(
    small_world, llava_dir, tmp_path
):
    cfg = DPOConfig(
        trainer=ARGS,
        max_length=512,
        lora=LoRAConfig(r=4, alpha=8),
        projector_learning_rate=2e-5,
    )
    prompts = io.read_rows(small_world.prompts("align"))
    trainer = _povid_trainer(llava_dir, prompts, tmp_path, cfg)
    peft = trainer.model
    projector = submodule(peft, "model.multi_modal_projector")
    trained = {id(p) for p in projector.modules_to_save.parameters()}
    assert trained and all(p.requires_grad for p in projector.modules_to_save.parameters())
    assert not any(p.requires_grad for p in projector.original_module.parameters())
    optimizer = trainer.create_optimizer()
    by_lr = {}
    for group in optimizer.param_groups:
        by_lr.setdefault(group["lr"], set()).update(id(p) for p in group["params"])
    assert by_lr[2e-5] == trained
    lora = {id(p) for n, p in peft.named_parameters() if "lora_" in n}
    assert lora and by_lr[1e-7] == lora
    # the reference (adapters disabled) does not move when the projector copy and LoRA do
    batch = trainer._prepare_inputs(trainer.data_collator([trainer.train_dataset[0]]))
    kwargs = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
    kwargs = {k: v for k, v in kwargs.items() if not k.startswith(("pair_", "completion"))}
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    before = trainer._reference_logps(kwargs, labels)
    policy_before = peft(**kwargs, labels=labels, fused_lm_head=True).log_probs.sum(1)
    with torch.no_grad():
        for p in peft.parameters():
            if p.requires_grad:
                p.add_(0.5)
    assert torch.allclose(trainer._reference_logps(kwargs, labels), before)
    policy_after = peft(**kwargs, labels=labels, fused_lm_head=True).log_probs.sum(1)
    assert not torch.allclose(policy_after, policy_before)
    # merged, the model carries the trained projector copy
    merged = peft.merge_and_unload()
    weight = submodule(merged, "model.multi_modal_projector").linear_1.weight
    assert torch.equal(weight, projector.modules_to_save["default"].linear_1.weight)
    assert family_of(merged).name == "llava"


def test_without_a_projector_rate_lora_leaves_the_projector_frozen(
    small_world, llava_dir, tmp_path
):
    cfg = DPOConfig(trainer=ARGS, max_length=512, lora=LoRAConfig(r=4, alpha=8))
    prompts = io.read_rows(small_world.prompts("align"))
    trainer = _povid_trainer(llava_dir, prompts, tmp_path, cfg)
    projector = submodule(trainer.model, "model.multi_modal_projector")
    assert not any(p.requires_grad for p in projector.parameters())
    assert {g["lr"] for g in trainer.create_optimizer().param_groups} == {1e-7}
