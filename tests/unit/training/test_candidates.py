"""Intermediate checkpoints kept as loadable models for selection (``pipeline.select_every``)."""

import pytest
import torch

from mmrlaif.config import DPOConfig, LoRAConfig
from mmrlaif.models.load import load_vlm
from mmrlaif.training.candidates import CandidateSaver, candidate_interval
from mmrlaif.training.dpo import train_dpo
from tests.unit.training.test_dpo import ARGS, _dataset, pairs_setup  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


def test_candidate_interval_by_hand():
    assert candidate_interval(3, 100) == 3  # whole steps
    assert candidate_interval(0.25, 10) == 2  # a quarter of 10 steps, rounded
    assert candidate_interval(0.01, 10) == 1  # never 0


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_checkpoints_are_saved_loadable_and_leave_training_unchanged(
    pairs_setup,  # noqa: F811 (the fixture)
    tmp_path,
    lora,
):
    model_dir, table = pairs_setup
    cfg = DPOConfig(
        trainer=ARGS | {"learning_rate": 1e-2, "per_device_train_batch_size": 2},
        lora=LoRAConfig(r=4, alpha=8) if lora else None,
    )

    def run(out, every=None):
        model, processor = load_vlm(str(model_dir))
        saver = [CandidateSaver(every, out / "candidates", processor)] if every else []
        train_dpo(model, processor, _dataset(table, tmp_path), cfg, out, 0, callbacks=saver)
        return saver

    (saver,) = run(tmp_path / "kept", every=3)  # 8 pairs / 2 x 2 epochs = 8 steps: 3 and 6
    run(tmp_path / "plain")
    assert saver.saved == [3, 6]
    names = sorted(p.name for p in (tmp_path / "kept" / "candidates").iterdir())
    assert names == ["step-3", "step-6"]
    final = load_vlm(str(tmp_path / "kept" / "model"))[0].state_dict()
    plain = load_vlm(str(tmp_path / "plain" / "model"))[0].state_dict()
    step3 = load_vlm(str(tmp_path / "kept" / "candidates" / "step-3"))[0].state_dict()
    base = load_vlm(str(model_dir))[0].state_dict()
    lm = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert set(step3) == set(base)  # a plain model: no adapter keys, merged
    assert not torch.equal(step3[lm], base[lm]) and not torch.equal(step3[lm], final[lm])
    for key, value in final.items():  # saving on the way did not change training
        torch.testing.assert_close(value, plain[key], rtol=0, atol=1e-6, msg=key)
