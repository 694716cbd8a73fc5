"""POVID's online noise rejection: grouping, the arg-max under the noised image, the noise
stream, and the loss against the reference code's own computation."""

import math

import pytest
import torch
import torch.nn.functional as F

from mmrlaif import io
from mmrlaif.config import DPOConfig
from mmrlaif.models.chat import ChatFormat, message_text
from mmrlaif.models.load import load_vlm, save_model
from mmrlaif.pairs.noise import add_diffusion_noise
from mmrlaif.pairs.table import NoiseSpec, online_noise_row, pair_row
from mmrlaif.training.data import encode_answers
from mmrlaif.training.dpo import _povid_trainer_kwargs, _read_pairs, dpo_arguments
from mmrlaif.training.povid import (
    POVIDDPOTrainer,
    argmax_tokens,
    noise_seed,
    place_tokens,
)
from mmrlaif.training.povid_data import POVIDCollator, group_examples, needs_grouping

SEED = 11
ARGS = {"per_device_train_batch_size": 2, "save_strategy": "no", "num_train_epochs": 2}


def test_argmax_tokens_and_their_labels_by_hand():
    # one row of 5 positions, vocabulary 4; the completion is positions 2 and 3
    logits = torch.zeros(1, 5, 4)
    logits[0, 1, 3] = 1.0  # position 1 predicts token 2's slot: arg-max 3
    logits[0, 2, 0] = 2.0  # position 2 predicts token 3's slot: arg-max 0
    logits[0, 3, 2] = 9.0  # position 3 predicts position 4 (not in the completion)
    mask = torch.tensor([[0, 0, 1, 1, 0]])
    (tokens,) = argmax_tokens(logits, mask)
    assert tokens.tolist() == [3, 0]
    labels = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, 8, 9]])
    placed = place_tokens(labels, torch.tensor([[0, 0, 1, 1, 0]] * 2), [1], [tokens])
    assert placed.tolist() == [[5, 6, 7, 8, 9], [-100, -100, 3, 0, -100]]
    with pytest.raises(ValueError, match="3 tokens for a completion of 2"):
        place_tokens(labels, mask, [0], [torch.tensor([1, 2, 3])])


def _rows(prompts):
    a, b, c, d = prompts[:4]
    return [
        pair_row(a, "There is a cup.", "There is a cup and a saucer.", "povid_text"),
        online_noise_row(a, "There is a cup."),
        online_noise_row(b, "A dog."),
        pair_row(c, "A fork.", "A fork and a knife.", "rlaifv"),
        pair_row(c, "A fork.", "A spoon.", "rlaifv"),
        pair_row(d, "A ball.", "A ball and a dog.", "povid_text"),
    ]


def test_povid_rows_of_a_prompt_make_one_example_weighed_per_example(small_world, tiny_model):
    prompts = io.read_rows(small_world.prompts("align"))
    rows = _rows(prompts)
    assert needs_grouping(rows) and not needs_grouping([rows[0], rows[3], rows[4], rows[5]])
    # a prompt with text and offline noise pairs is weighed per example too
    assert needs_grouping(
        [rows[0], pair_row(prompts[0], "There is a cup.", "A cat.", "povid_noise")]
    )
    examples = group_examples(rows)
    got = [(e["prompt_id"], e["rejected"], e["noise"], e["sources"]) for e in examples]
    ids = [str(p["prompt_id"]) for p in prompts[:4]]
    assert got == [
        (ids[0], ["There is a cup and a saucer."], True, ["povid_text", "povid_noise"]),
        (ids[1], [], True, ["povid_noise"]),
        (ids[2], ["A fork and a knife."], False, ["rlaifv"]),  # RLAIF-V pairs stay apart
        (ids[2], ["A spoon."], False, ["rlaifv"]),
        (ids[3], ["A ball and a dog."], False, ["povid_text"]),
    ]
    _, processor = tiny_model
    batch = POVIDCollator(processor)(examples)
    # rows: 5 chosen, 4 fixed rejections, then the 2 noise rows (their chosen answers)
    assert batch["input_ids"].shape[0] == 11
    assert batch["pair_chosen"].tolist() == [0, 2, 3, 4, 0, 1]
    assert batch["pair_weight"] == [0.5, 1.0, 1.0, 1.0, 0.5, 1.0]  # 0.5 / 0.5 for both sources
    assert batch["pair_noise"].tolist() == [False] * 4 + [True] * 2
    for noise_row, chosen_row in ((9, 0), (10, 1)):
        n = int(batch["attention_mask"][chosen_row].sum())
        assert torch.equal(batch["input_ids"][noise_row, :n], batch["input_ids"][chosen_row, :n])
        assert torch.equal(
            batch["completion_mask"][noise_row], batch["completion_mask"][chosen_row]
        )
    assert batch["noise_example_ids"] == ids[:2]
    with pytest.raises(ValueError, match="different chosen answers"):
        group_examples([rows[0], online_noise_row(prompts[0], "Another truth.")])


def _model_dir(name, tiny_model, tmp_path):
    if name == "toy":
        model, processor = tiny_model
    else:
        from mmrlaif.toyworld.twins import build_twin

        model, processor = build_twin(name)
    return save_model(model, processor, tmp_path / f"policy-{name}")


def _trainer(model_dir, rows, tmp_path, spec=None, cfg=None, **trainer_kwargs):
    """A POVID trainer built exactly as ``train_dpo`` builds it, without training."""
    table = io.write_table(rows, tmp_path / "pairs.parquet")
    dataset = _read_pairs(table, tmp_path / "hf")
    model, processor = load_vlm(str(model_dir))
    cfg = cfg or DPOConfig(trainer=ARGS, max_length=512)
    kwargs = _povid_trainer_kwargs(dataset, processor, cfg, SEED)
    if spec is not None:
        kwargs["noise"] = spec
    args = dpo_arguments(cfg, tmp_path / "ckpt", SEED)
    return POVIDDPOTrainer(
        model=model, args=args, processing_class=processor, **(kwargs | trainer_kwargs)
    )


def _one(trainer, i=0):
    return trainer.data_collator([trainer.train_dataset[i]])


@pytest.mark.parametrize("family", ["toy", "llava", "qwen2_5_vl"])
def test_the_noise_rejection_is_the_per_position_argmax_under_the_noised_image(
    family, small_world, tiny_model, tmp_path
):
    prompt = io.read_rows(small_world.prompts("align"))[0]
    answer = "There is a cup and a dog."
    trainer = _trainer(
        _model_dir(family, tiny_model, tmp_path), [online_noise_row(prompt, answer)], tmp_path
    )
    trainer.noise_epoch = 1
    (tokens,) = trainer.noise_tokens(trainer.noised_batch(_one(trainer)))

    # independently: noise the image with the example's epoch-1 seed, encode the truth after
    # the prompt, and take the arg-max of each position that predicts one of its tokens
    chat = ChatFormat(trainer.processing_class)
    image = io.cell_to_image(prompt["image"], "p")
    noisy = add_diffusion_noise(image, noise_seed(SEED, str(prompt["prompt_id"]), 1), 500)
    completion = chat.completion_ids([prompt["question"]], [answer])[0]
    n_prompt = chat.encode_prompts([prompt["question"]], [noisy])["input_ids"].shape[1]
    enc = encode_answers(chat, [noisy], [prompt["question"]], [answer])
    assert enc["input_ids"][0, n_prompt:].tolist() == completion
    kwargs = {k: v for k, v in enc.items() if k != "completion_mask"}
    with torch.no_grad():
        logits = trainer.model(**kwargs).logits[0]
    expected = [int(logits[n_prompt - 1 + k].argmax()) for k in range(len(completion))]
    assert len(tokens) == len(completion)  # the chosen answer's length, end of turn included
    assert tokens.tolist() == expected


def test_fresh_noise_every_epoch_reproducible_and_independent_of_the_batch(
    small_world, tiny_model, tmp_path
):
    prompts = io.read_rows(small_world.prompts("align"))
    rows = [online_noise_row(p, "There is a cup.") for p in prompts[:3]]
    trainer = _trainer(_model_dir("toy", tiny_model, tmp_path), rows, tmp_path)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    pixels = {}
    for epoch in (0, 1, 0):
        trainer.noise_epoch = epoch
        pixels.setdefault(epoch, []).append(trainer.noised_batch(batch)["pixel_values"])
    assert torch.equal(pixels[0][0], pixels[0][1])  # same seed, same epoch: same noise
    assert not torch.equal(pixels[0][0], pixels[1][0])  # next epoch: a fresh draw
    # each example's noise is its own stream: alone in its batch it is noised the same
    trainer.noise_epoch = 1
    alone = trainer.noised_batch(trainer.data_collator([trainer.train_dataset[2]]))
    assert torch.equal(alone["pixel_values"][0], pixels[1][0][2])
    # and it is the documented draw: seed (run seed, epoch, prompt id), t = 500, unclamped
    image = io.cell_to_image(prompts[2]["image"], "p")
    drawn = add_diffusion_noise(image, noise_seed(SEED, str(prompts[2]["prompt_id"]), 1), 500)
    expected = trainer.data_collator.chat.encode_prompts(["q"], [drawn])["pixel_values"][0]
    assert torch.equal(alone["pixel_values"][0], expected)


def test_training_draws_the_noise_of_each_epoch(small_world, tiny_model, tmp_path):
    prompts = io.read_rows(small_world.prompts("align"))
    rows = [online_noise_row(p, "There is a cup.") for p in prompts[:4]]
    trainer = _trainer(_model_dir("toy", tiny_model, tmp_path), rows, tmp_path)
    seen, real = [], trainer.noised_batch

    def spy(inputs):
        seen.append(trainer.noise_epoch)
        return real(inputs)

    trainer.noised_batch = spy
    trainer.train()
    assert seen == [0, 0, 1, 1]  # 4 examples, 2 per step, 2 epochs
    assert {"noise/tokens_as_chosen", "rewards/margins_noise"} <= set(trainer.state.log_history[0])


def _reference_code_loss(policy, reference, trainer, batch, beta):
    """The loss as POVID's ``get_batch_metrics`` computes it: each model's arg-max on the noised
    image, gathered from the log-softmax of its clean chosen pass; text rejections scored as
    usual; 0.5 * each per example."""
    n = len(batch["example_ids"])
    noised = trainer.noised_batch(batch)
    clean = trainer.clean_noise_batch(batch)

    def run(model, enc):
        kwargs = {k: v for k, v in enc.items() if k != "completion_mask"}
        with torch.no_grad():
            return model(**kwargs).logits.float()

    def scores(model):
        keys = [
            k
            for k in batch
            if isinstance(batch[k], torch.Tensor) and k.startswith(("in", "at", "pi"))
        ]
        logits = run(model, {k: batch[k] for k in keys})
        mask = batch["completion_mask"]
        logps = []
        for row in range(logits.shape[0]):
            pos = mask[row].nonzero().squeeze(1)
            lp = logits[row, pos - 1].log_softmax(-1)
            logps.append(lp.gather(1, batch["input_ids"][row, pos][:, None]).sum())
        chosen, fixed = torch.stack(logps[:n]), torch.stack(logps[n : n + 2])
        noisy_logits, clean_logits = run(model, noised), run(model, clean)
        noise = []
        for row in range(noisy_logits.shape[0]):
            pos = noised["completion_mask"][row].nonzero().squeeze(1)
            argmax = noisy_logits[row, pos - 1].argmax(-1)
            lp = clean_logits[row, pos - 1].log_softmax(-1)
            noise.append(lp.gather(1, argmax[:, None]).sum())
        return chosen, fixed, torch.stack(noise)

    pc, pt, pn = scores(policy)
    rc, rt, rn = scores(reference)
    losses = []
    for i in range(n):  # both examples have a text rejection (pair i) and a noise one (i)
        text = -F.logsigmoid(beta * ((pc[i] - rc[i]) - (pt[i] - rt[i])))
        noise = -F.logsigmoid(beta * ((pc[i] - rc[i]) - (pn[i] - rn[i])))
        losses.append(0.5 * text + 0.5 * noise)
    return torch.stack(losses).mean()


@pytest.mark.parametrize("cache", [True, False])
def test_the_loss_is_the_reference_codes(small_world, tiny_model, tmp_path, cache):
    prompts = io.read_rows(small_world.prompts("align"))
    rows = []
    answers = [("There is a cup.", "There is a cup and a saucer."), ("A dog.", "A ball.")]
    for p, (good, bad) in zip(prompts[:2], answers, strict=True):
        rows += [pair_row(p, good, bad, "povid_text"), online_noise_row(p, good)]
    model_dir = _model_dir("toy", tiny_model, tmp_path)
    trainer = _trainer(model_dir, rows, tmp_path, cache_reference=cache)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # move the policy away from its reference (loaded from disk)
        for param in trainer.model.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=generator))
    trainer.model.eval()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    reference, _ = load_vlm(str(model_dir))
    expected = _reference_code_loss(trainer.model, reference, trainer, batch, trainer.beta)
    for _ in range(2):  # the second time from the reference cache, when on
        with torch.no_grad():
            loss = trainer.compute_loss(trainer.model, trainer._prepare_inputs(dict(batch)))
        assert float(loss) == pytest.approx(float(expected), rel=1e-5)
        assert not math.isclose(float(loss), math.log(2), rel_tol=1e-3)
    assert (len(trainer.reference_cache) == 2) == cache


def test_policy_tokens_are_scored_by_both_models(small_world, tiny_model, tmp_path):
    prompt = io.read_rows(small_world.prompts("align"))[0]
    rows = [online_noise_row(prompt, "There is a cup.")]
    spec = NoiseSpec(500, False, "policy")
    trainer = _trainer(_model_dir("toy", tiny_model, tmp_path), rows, tmp_path, spec=spec)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for param in trainer.model.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=generator))
    trainer.model.eval()
    with torch.no_grad():
        trainer.compute_loss(trainer.model, trainer._prepare_inputs(_one(trainer)))
    assert trainer._metrics["eval"]["noise/reference_tokens_as_policy"] == [1.0]
    assert message_text(rows[0]["chosen"]) == "There is a cup."
