"""Every supported model family through every stage, on a tiny random twin of its architecture.

Each twin (``mmrlaif.toyworld.twins``) is the real transformers model, processor and image
processor classes of the family, a tokenizer laid out like the real one and the real chat
format, with every size shrunk. Per family: load it through ``load_vlm``; sample (the same
samples at every batch size); label with the prefix cache and with full passes (the same
verdicts); check that DPO's encoding of prompt + answer is the processor's encoding of the
full text; build pairs from the policy's own samples; DPO with a precomputed reference, full
(vision encoder untouched) and LoRA (adapters in the language model only), first loss ln 2;
save, reload, generate; evaluate.
"""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset

from mmrlaif import io
from mmrlaif.config import DPOConfig, EvalConfig, LoRAConfig, SamplingConfig
from mmrlaif.evaluation.evaluate import evaluate_policy
from mmrlaif.io.tables import cell_to_image
from mmrlaif.labeling.labeler import VLMYesNoLabeler
from mmrlaif.models.chat import ChatFormat
from mmrlaif.models.families import family_of, vision_encoder_parameters
from mmrlaif.models.generate import generate_answers
from mmrlaif.models.load import load_vlm
from mmrlaif.pairs.rlaifv import Candidate, Pair
from mmrlaif.pairs.table import rlaifv_rows
from mmrlaif.sampling.sampler import sample_candidates
from mmrlaif.toyworld import toy_lexicon
from mmrlaif.toyworld.twins import TWIN_FAMILIES, save_twin
from mmrlaif.training.data import PreferenceCollator, encode_answers
from mmrlaif.training.dpo import lora_config, train_dpo

pytestmark = pytest.mark.integration

QUESTIONS = ("Is there a cup in the image?", "Is the ball red?", "Are there two dogs?")
DPO_ARGS = {
    "per_device_train_batch_size": 3,
    "learning_rate": 1e-2,
    "num_train_epochs": 1,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
    "save_strategy": "no",
    "activation_checkpointing": False,
}


@pytest.fixture(scope="module", params=TWIN_FAMILIES)
def twin(request, tmp_path_factory):
    """The family's twin saved as a checkpoint folder, as a user's model would be."""
    family = request.param
    return family, save_twin(family, tmp_path_factory.mktemp(family) / "twin")


@pytest.fixture(scope="module")
def prompts(small_world):
    return io.read_rows(small_world.prompts("align"))[:3]


def _images(rows):
    return [cell_to_image(r["image"], str(r["prompt_id"])) for r in rows]


def test_loads_as_its_family_with_its_own_chat_format(twin):
    family, path = twin
    model, processor = load_vlm(str(path))
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    found = family_of(model)
    assert found.name == {"smolvlm": "idefics3", "qwen2_5_vl": "qwen2_vl"}.get(family, family)
    chat = ChatFormat(processor)
    # the stop tokens are the model's own end of turn, which ends every completion
    assert chat.completion("A cup.").endswith(chat.end_of_turn)
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    assert processor.tokenizer.convert_tokens_to_ids(chat.end_of_turn) in eos


def test_sampling_is_the_same_at_every_batch_size(twin, prompts):
    _, path = twin
    model, processor = load_vlm(str(path))
    rows = {}
    for batch in (1, 3):
        cfg = SamplingConfig(n=2, max_new_tokens=8, prompts_per_batch=batch, seed=3)
        rows[batch], stats = sample_candidates(model, processor, prompts, cfg)
        assert stats.samples_out == 6
    assert rows[1] == rows[3]
    assert len({r["response"] for r in rows[1]}) > 1  # sampled, not one constant answer


def test_prefix_cache_verdicts_equal_full_passes(twin, prompts):
    _, path = twin
    model, processor = load_vlm(str(path))
    images = [image for image in _images(prompts) for _ in QUESTIONS]
    questions = list(QUESTIONS) * len(prompts)
    cached = VLMYesNoLabeler(model, processor, batch_size=4, prefix_cache=True)
    full = VLMYesNoLabeler(model, processor, batch_size=4, prefix_cache=False)
    with_cache = cached.answer(images, questions)
    # the prefix ids + suffix ids were checked equal to the full prompt's and the cache used
    assert cached.prefix_cache and cached.forward_passes == 2 * len(prompts)
    without = full.answer(images, questions)
    for a, b in zip(with_cache, without, strict=True):
        assert a.p_yes == pytest.approx(b.p_yes, abs=1e-5)
        assert a.p_no == pytest.approx(b.p_no, abs=1e-5)
    assert len({round(v.p_yes, 6) for v in without}) > 1  # the answers depend on the input


def test_training_sees_the_ids_of_the_full_text(twin, prompts):
    _, path = twin
    _, processor = load_vlm(str(path))
    chat = ChatFormat(processor)
    images = _images(prompts)
    answers = ["There is a red cup.", "A dog and a ball", "two cats."]
    questions = [p["question"] for p in prompts]
    enc = encode_answers(chat, images, questions, answers)
    for i, (q, a) in enumerate(zip(questions, answers, strict=True)):
        full = processor(
            text=[chat.prompt(q) + chat.completion(a)],
            images=[[images[i]]],
            return_tensors="pt",
            add_special_tokens=chat.add_special_tokens,
        )["input_ids"][0]
        n = int(enc["attention_mask"][i].sum())
        assert enc["input_ids"][i, :n].tolist() == full.tolist()
        tok = processor.tokenizer
        if tok.bos_token_id is not None and chat.add_special_tokens:
            assert full[0] == tok.bos_token_id  # the BOS sampling and labeling also see
        completion = enc["input_ids"][i][enc["completion_mask"][i].bool()].tolist()
        assert tok.decode(completion, skip_special_tokens=True).strip() == a
        assert completion[-1] == tok.convert_tokens_to_ids(chat.end_of_turn)


def _pairs_dataset(model, processor, prompts):
    """Pairs of the policy's own samples: sample 0 chosen, sample 1 rejected."""
    samples, _ = sample_candidates(
        model, processor, prompts, SamplingConfig(n=2, max_new_tokens=8, seed=5)
    )
    by_prompt: dict[str, list[dict]] = {}
    for row in samples:
        by_prompt.setdefault(row["prompt_id"], []).append(row)
    pairs = [
        Pair(
            pid,
            Candidate(pid, 0, rows[0]["response"], 0.0),
            Candidate(pid, 1, rows[1]["response"], -1.0),
        )
        for pid, rows in by_prompt.items()
    ]
    return Dataset.from_list(rlaifv_rows(pairs, prompts))


def _first_loss(result):
    return next(h["loss"] for h in result.history if "loss" in h)


def test_dpo_full_and_lora_save_reload_generate_evaluate(twin, prompts, small_world, tmp_path):
    family, path = twin
    model, processor = load_vlm(str(path))
    dataset = _pairs_dataset(model, processor, prompts)
    assert len(dataset) == 3
    PreferenceCollator(processor)(list(dataset))  # the pairs encode as the policy's prompts
    spec = family_of(model)
    before = {k: v.detach().clone() for k, v in vision_encoder_parameters(model, spec).items()}
    lm_name = next(
        n for n, _ in model.named_parameters() if spec.language_model in n and "q_proj" in n
    )
    lm_before = model.state_dict()[lm_name].clone()

    # full fine-tuning, reference log-probs precomputed: the vision encoder stays as it was
    full = train_dpo(model, processor, dataset, DPOConfig(trainer=DPO_ARGS), tmp_path / "full", 0)
    assert _first_loss(full) == pytest.approx(math.log(2), abs=1e-5)
    trained, processor = load_vlm(str(full.model_dir))
    after = vision_encoder_parameters(trained, family_of(trained))
    assert set(after) == set(before)
    for name, value in after.items():
        assert torch.equal(value, before[name]), f"{family}: vision encoder {name} changed"
    assert not torch.equal(trained.state_dict()[lm_name], lm_before)

    # LoRA: adapters on the language model only, merged into the saved model
    base, processor = load_vlm(str(path))
    cfg = DPOConfig(trainer=DPO_ARGS, lora=LoRAConfig(r=4, alpha=8))
    from peft import get_peft_model

    peft_model = get_peft_model(load_vlm(str(path))[0], lora_config(cfg, base))
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in peft_model.named_parameters() if "lora_A" in n}
    assert adapted and all(f".{spec.language_model}." in f".{n}" for n in adapted), adapted
    vision_prefix = spec.vision_encoder
    assert not any(vision_prefix in n for n in adapted)
    lora = train_dpo(base, processor, dataset, cfg, tmp_path / "lora", 0)
    assert _first_loss(lora) == pytest.approx(math.log(2), abs=1e-5)
    merged, processor = load_vlm(str(lora.model_dir))
    assert not any("lora" in k for k in merged.state_dict())
    for name, value in vision_encoder_parameters(merged, family_of(merged)).items():
        assert torch.equal(value, before[name]), f"{family}: LoRA changed vision {name}"

    # save, reload, generate: the reloaded model answers as the trained one in memory did
    images = _images(prompts)
    questions = [p["question"] for p in prompts]
    again, processor_again = load_vlm(str(full.model_dir))
    assert generate_answers(trained, processor, images, questions, 6) == generate_answers(
        again, processor_again, images, questions, 6
    )

    # evaluate: CHAIR and POPE over the eval split
    report = evaluate_policy(
        again,
        processor_again,
        io.read_rows(small_world.prompts("eval")),
        io.read_rows(small_world.pope),
        toy_lexicon(),
        {},
        EvalConfig(max_new_tokens=6, batch_size=4, limit=2),
    )
    assert report.objects.n_responses == 2
    assert all(r.n == 4 for r in report.pope.values())
