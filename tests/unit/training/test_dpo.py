import json
import math
import weakref

import pytest
import torch
from datasets import load_dataset

from mmrlaif import io
from mmrlaif.config import DPOConfig, LoRAConfig, ModelConfig
from mmrlaif.models.load import load_vlm, save_model
from mmrlaif.pairs.rlaifv import Candidate, Pair
from mmrlaif.pairs.table import rlaifv_rows
from mmrlaif.training.dpo import check_lengths, dpo_arguments, dpo_stage, train_dpo

pytestmark = pytest.mark.integration

ARGS = {
    "per_device_train_batch_size": 4,
    "learning_rate": 1e-3,
    "num_train_epochs": 2,
    "save_strategy": "no",
}


@pytest.fixture()
def pairs_setup(small_world, tiny_model, tmp_path):
    model_dir = save_model(*tiny_model, tmp_path / "policy")
    prompts = io.read_rows(small_world.prompts("align"))[:8]
    answers = [
        ("There is a cup.", "There is a cup and a saucer."),
        ("A dog.", "A dog and a ball and a fork."),
    ]
    pairs = []
    for i, p in enumerate(prompts):
        good, bad = answers[i % 2]
        pid = p["prompt_id"]
        pairs.append(Pair(pid, Candidate(pid, 0, good, 0.0), Candidate(pid, 1, bad, -1.0)))
    table = io.write_table(rlaifv_rows(pairs, prompts), tmp_path / "pairs.parquet")
    return model_dir, table


def _dataset(table, tmp_path):
    return load_dataset(
        "parquet", data_files=str(table), split="train", cache_dir=str(tmp_path / "hf")
    )


def _trainer(model_dir, table, tmp_path, precompute: bool, name: str, **trainer):
    """A TRL trainer built exactly as ``train_dpo`` builds it, without training."""
    from trl import DPOTrainer

    from mmrlaif.training.reference import PrecomputedRefDPOTrainer

    model, processor = load_vlm(str(model_dir))
    cfg = DPOConfig(trainer=ARGS | trainer)
    args = dpo_arguments(cfg, tmp_path / name, seed=0)
    kwargs = {"model": model, "args": args, "processing_class": processor}
    ds = _dataset(table, tmp_path)
    if precompute:
        return PrecomputedRefDPOTrainer(train_dataset=ds, **kwargs)
    ref, _ = load_vlm(str(model_dir))
    return DPOTrainer(ref_model=ref, train_dataset=ds, **kwargs)


def _perturb(model, seed=1):
    """Move the policy away from its reference so the loss is not the trivial ln 2."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("loss_type", [["sigmoid"], ["sigmoid", "sft"]])
def test_precomputed_reference_loss_equals_trl_live_reference(pairs_setup, tmp_path, loss_type):
    model_dir, table = pairs_setup
    extra = {"loss_type": loss_type, "loss_weights": [1.0] * len(loss_type)}
    live = _trainer(model_dir, table, tmp_path, False, "live", **extra)
    pre = _trainer(model_dir, table, tmp_path, True, "pre", **extra)
    assert pre.ref_model is None and pre.precompute_ref_logps
    for trainer in (live, pre):
        _perturb(trainer.model)
    batch_live = next(iter(live.get_train_dataloader()))
    batch_pre = next(iter(pre.get_train_dataloader()))
    assert torch.equal(batch_live["input_ids"], batch_pre["input_ids"])
    assert batch_pre["ref_chosen_logps"].shape == (ARGS["per_device_train_batch_size"],)
    losses = []
    for trainer, batch in ((live, batch_live), (pre, batch_pre)):
        trainer.model.train()
        losses.append(float(trainer.compute_loss(trainer.model, batch)))
    assert not math.isclose(losses[0], math.log(2), abs_tol=1e-3)
    assert losses[1] == pytest.approx(losses[0], abs=1e-5)


def test_reference_model_is_released_before_training(pairs_setup, tmp_path):
    from trl import DPOTrainer

    from mmrlaif.training.reference import PrecomputedRefDPOTrainer

    model_dir, table = pairs_setup
    model, processor = load_vlm(str(model_dir))
    cfg = DPOConfig(trainer=ARGS)
    seen = {}
    original = DPOTrainer.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen["ref"] = weakref.ref(self.ref_model)

    try:
        DPOTrainer.__init__ = spy
        trainer = PrecomputedRefDPOTrainer(
            model=model,
            args=dpo_arguments(cfg, tmp_path / "o", 0),
            train_dataset=_dataset(table, tmp_path),
            processing_class=processor,
        )
    finally:
        DPOTrainer.__init__ = original
    # TRL loaded a reference (from the policy's folder) and the trainer let go of it
    assert seen["ref"]() is None
    assert set(trainer.train_dataset.column_names) >= {"ref_chosen_logps", "ref_rejected_logps"}


def test_train_dpo_lowers_loss_and_saves_a_loadable_model(pairs_setup, tmp_path):
    model_dir, table = pairs_setup
    model, processor = load_vlm(str(model_dir))
    cfg = DPOConfig(trainer=ARGS | {"num_train_epochs": 6})
    result = train_dpo(model, processor, _dataset(table, tmp_path), cfg, tmp_path / "run", 0)
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert losses[0] == pytest.approx(math.log(2), abs=1e-4)  # policy == reference at step 1
    assert losses[-1] < losses[0]
    margins = [h["rewards/margins"] for h in result.history if "rewards/margins" in h]
    assert margins[-1] > 0
    assert result.sources == {"rlaifv": 8} and result.n_pairs == 8
    reloaded, _ = load_vlm(str(result.model_dir))
    assert not torch.equal(reloaded.lm_head.weight, load_vlm(str(model_dir))[0].lm_head.weight)


def test_lora_trains_language_model_only_and_merges(pairs_setup, tmp_path):
    model_dir, table = pairs_setup
    model, processor = load_vlm(str(model_dir))
    vision_before = {k: v.clone() for k, v in model.model.vision_tower.state_dict().items()}
    cfg = DPOConfig(trainer=ARGS | {"learning_rate": 1e-2}, lora=LoRAConfig(r=4, alpha=8))
    result = train_dpo(model, processor, _dataset(table, tmp_path), cfg, tmp_path / "lora", 0)
    merged, _ = load_vlm(str(result.model_dir))
    base, _ = load_vlm(str(model_dir))
    for k, v in merged.model.vision_tower.state_dict().items():
        assert torch.equal(v, vision_before[k]), k
    lm = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged.state_dict()[lm], base.state_dict()[lm])
    assert not any("lora" in k for k in merged.state_dict())


def test_resume_after_a_kill_mid_epoch_matches_an_uninterrupted_run(pairs_setup, tmp_path):
    from transformers import TrainerCallback

    model_dir, table = pairs_setup
    trainer = ARGS | {"save_strategy": "steps", "save_steps": 1, "per_device_train_batch_size": 2}
    cfg = DPOConfig(trainer=trainer)

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 3:  # mid first epoch (4 steps per epoch)
                raise KeyboardInterrupt("killed")

    def run(out, callbacks=()):
        model, processor = load_vlm(str(model_dir))
        ds = _dataset(table, tmp_path)
        return train_dpo(model, processor, ds, cfg, out, 0, callbacks=callbacks)

    full = run(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed", [Kill()])
    resumed = run(tmp_path / "killed")
    assert resumed.resumed_from and resumed.resumed_from.endswith("checkpoint-3")
    losses = [[h["loss"] for h in r.history if "loss" in h] for r in (full, resumed)]
    assert losses[1] == pytest.approx(losses[0], abs=1e-6)
    a = load_vlm(str(full.model_dir))[0].state_dict()
    b = load_vlm(str(resumed.model_dir))[0].state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_dpo_stage_with_no_pairs_passes_the_policy_on(small_world, tiny_model, tmp_path):
    model_dir = save_model(*tiny_model, tmp_path / "policy")
    empty = io.write_table([], tmp_path / "pairs.parquet")
    result = dpo_stage(ModelConfig(), DPOConfig(), model_dir, empty, tmp_path / "dpo", 0)
    assert result.skipped_reason and "no pairs" in result.skipped_reason
    assert result.n_pairs == 0
    before, after = load_vlm(str(model_dir))[0], load_vlm(str(result.model_dir))[0]
    assert torch.equal(before.lm_head.weight, after.lm_head.weight)
    report = json.loads((tmp_path / "dpo" / "dpo.json").read_text())
    assert report["skipped_reason"] == result.skipped_reason


def test_over_long_pair_is_named(pairs_setup, tmp_path):
    model_dir, table = pairs_setup
    _, processor = load_vlm(str(model_dir))
    ds = _dataset(table, tmp_path)
    longest = check_lengths(ds, processor, 1000)
    with pytest.raises(ValueError, match=r"pair align-\d+: prompt \+ \w+ answer is \d+ tokens"):
        check_lengths(ds, processor, longest - 1)


def test_bad_trainer_key_names_the_section(tmp_path):
    with pytest.raises(ValueError, match="dpo.trainer"):
        dpo_arguments(DPOConfig(trainer={"no_such_arg": 1}), tmp_path, 0)


def test_a_checkpoint_killed_while_saving_is_passed_over(tmp_path):
    from mmrlaif.training.dpo import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path / "none") is None
    for step, complete in ((2, True), (10, True), (12, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    # numbers, not names, order checkpoints (10 after 2); 12 has no trainer state: half-saved
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
