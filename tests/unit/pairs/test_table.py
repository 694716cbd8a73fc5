import pytest
from datasets import load_dataset
from PIL import Image

from mmrlaif import io
from mmrlaif.models.chat import message_text
from mmrlaif.models.load import save_model
from mmrlaif.pairs.rlaifv import Candidate, Pair
from mmrlaif.pairs.table import pair_row, rlaifv_rows


def make_pairs(prompts):
    pairs = []
    for p in prompts:
        pid = p["prompt_id"]
        pairs.append(
            Pair(
                pid,
                Candidate(pid, 0, "There is a cup.", 0.0),
                Candidate(pid, 3, "There is a cup and a saucer.", -1.0),
            )
        )
    return pairs


def test_rows_have_trl_layout_and_provenance(small_world, tmp_path):
    prompts = io.read_rows(small_world.prompts("align"))[:3]
    rows = rlaifv_rows(make_pairs(prompts), prompts)
    path = io.write_table(rows, tmp_path / "pairs.parquet")
    ds = load_dataset("parquet", data_files=str(path), split="train")
    row = ds[0]
    # the conversational layout: a user turn (image slot, then the question), assistant turns
    (user,) = row["prompt"]
    assert user["role"] == "user"
    assert [p["type"] for p in user["content"]] == ["image", "text"]
    assert user["content"][1]["text"] == prompts[0]["question"]
    assert row["chosen"] == [
        {"role": "assistant", "content": [{"type": "text", "text": "There is a cup."}]}
    ]
    assert message_text(row["rejected"]) == "There is a cup and a saucer."
    assert isinstance(row["images"][0], Image.Image)
    assert (row["source"], row["chosen_score"], row["rejected_idx"]) == ("rlaifv", 0.0, 3)


def test_bad_pairs_are_named(small_world):
    prompts = io.read_rows(small_world.prompts("align"))[:1]
    with pytest.raises(ValueError, match="unknown pair source 'magic'"):
        pair_row(prompts[0], "a", "b", "magic")
    with pytest.raises(ValueError, match="empty rejected answer"):
        pair_row(prompts[0], "a", "  ", "rlaifv")
    with pytest.raises(KeyError, match="'ghost'"):
        rlaifv_rows(
            [Pair("ghost", Candidate("ghost", 0, "a", 0), Candidate("ghost", 1, "b", -1))], prompts
        )


@pytest.mark.integration
def test_trl_dpo_trainer_consumes_the_table(small_world, tiny_model, tmp_path):
    from trl import DPOConfig, DPOTrainer

    from mmrlaif.models.load import load_vlm

    model_dir = save_model(*tiny_model, tmp_path / "m")
    model, processor = load_vlm(str(model_dir))
    ref, _ = load_vlm(str(model_dir))
    prompts = io.read_rows(small_world.prompts("align"))[:4]
    path = io.write_table(rlaifv_rows(make_pairs(prompts), prompts), tmp_path / "pairs.parquet")
    ds = load_dataset("parquet", data_files=str(path), split="train")
    args = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        use_cpu=True,
        bf16=False,
        max_length=64,
        report_to="none",
        per_device_train_batch_size=2,
        max_steps=2,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = DPOTrainer(
        model=model, ref_model=ref, args=args, train_dataset=ds, processing_class=processor
    )
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2
    # identical policy and reference at step 1: the DPO loss is exactly -log sigmoid(0) = ln 2
    assert losses[0] == pytest.approx(0.693147, abs=1e-5)


def test_an_online_row_names_its_noise_and_a_plain_row_is_not_online(small_world):
    from mmrlaif.pairs.table import REFERENCE_NOISE, NoiseSpec, online_noise_row, online_spec

    prompt = io.read_rows(small_world.prompts("align"))[0]
    row = online_noise_row(prompt, "There is a cup.")
    assert message_text(row["rejected"]) == (
        "[online noise rejection: step=500 clamp=no reference_tokens=own]"
    )
    assert online_spec(row) == REFERENCE_NOISE == NoiseSpec(500, False, "own")
    # the same text under another source, or a real answer under povid_noise, is not online
    assert online_spec(row | {"source": "povid_text"}) is None
    assert online_spec(pair_row(prompt, "There is a cup.", "A dog.", "povid_noise")) is None
