import math

import pytest
import torch

from mmrlaif import io
from mmrlaif.evaluation.guidance import best_of_n, completion_logprobs, guidance_rewards
from mmrlaif.toyworld.tiny import build_tiny_vlm
from tests.conftest import SMALL_MODEL


def test_completion_logprobs_by_hand(small_world, tiny_model):
    model, processor = tiny_model
    prompt = io.read_rows(small_world.prompts("align"))[0]
    image = io.cell_to_image(prompt["image"], "p")
    question, response = prompt["question"], "There is a cup."
    sums, counts = completion_logprobs(model, processor, [image], [question], [response])
    # by hand: one full pass, then add log p of each completion token given its prefix
    tok = processor.tokenizer
    prompt = f"USER: <image>\n{question} ASSISTANT:"  # the tiny model's LLaVA-1.5 format
    n_prompt = len(processor(text=[prompt], images=[image])["input_ids"][0])
    enc = processor(
        text=[f"{prompt} {response}</s>"],
        images=[image],
        return_tensors="pt",
    )
    with torch.no_grad():
        logp = model(**enc).logits[0].double().log_softmax(-1)
    ids = enc["input_ids"][0]
    expected = sum(float(logp[t - 1, ids[t]]) for t in range(n_prompt, len(ids)))
    assert counts.tolist() == [len(ids) - n_prompt]
    assert ids[-1] == tok.eos_token_id  # the EOS token is part of |y|
    assert float(sums[0]) == pytest.approx(expected, abs=1e-9)


def test_rewards_and_best_of_n(small_world, tiny_model):
    model, processor = tiny_model
    other, _ = build_tiny_vlm(SMALL_MODEL, 64, seed=3)
    prompt = io.read_rows(small_world.prompts("align"))[0]
    image = io.cell_to_image(prompt["image"], "p")
    responses = ["There is a cup.", "There is a dog and a ball."]
    args = ([image] * 2, [prompt["question"]] * 2, responses)
    assert guidance_rewards(model, model, processor, *args) == [0.0, 0.0]
    rewards = guidance_rewards(model, other, processor, *args, beta=0.5)
    pi, n = completion_logprobs(model, processor, *args)
    ref, _ = completion_logprobs(other, processor, *args)
    for r, a, b, k in zip(rewards, pi, ref, n, strict=True):
        assert r == pytest.approx(0.5 * (float(a) - float(b)) / int(k))
    assert all(math.isfinite(r) for r in rewards)
    assert best_of_n(["a", "a", "b", "a"], [0.1, 0.3, -1.0, 0.3]) == {"a": 1, "b": 2}


def test_best_of_n_command_keeps_each_prompts_highest_reward(small_world, tiny_model, tmp_path):
    from pathlib import Path

    from mmrlaif.cli import main
    from mmrlaif.config import SamplingConfig
    from mmrlaif.models.load import load_vlm, save_model
    from mmrlaif.sampling.sampler import sample_candidates

    model, processor = tiny_model
    reference = save_model(model, processor, tmp_path / "reference")
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # the "aligned" policy: moved away from its reference
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    policy = save_model(model, processor, tmp_path / "policy")
    root = Path(__file__).resolve().parents[3]
    args = ["best-of-n", "--config", str(root / "configs" / "tiny_cpu.yaml")]
    args += ["--set", f"run.output_dir={tmp_path}", "--set", "sampling.max_new_tokens=8"]
    args += ["--policy", str(policy), "--reference", str(reference), "--n", "3"]
    args += ["--prompts", str(small_world.prompts("eval")), "--beta", "0.5"]
    assert main(args) == 0
    rows = io.read_rows(tmp_path / "best_of_n.parquet")
    prompts = io.read_rows(small_world.prompts("eval"))
    assert [r["prompt_id"] for r in rows] == [p["prompt_id"] for p in prompts]
    # by hand for the first prompt: its 3 seeded samples, their rewards, the best kept
    pi, _ = load_vlm(str(policy))
    ref, _ = load_vlm(str(reference))
    cfg = SamplingConfig(n=3, max_new_tokens=8)
    samples, _ = sample_candidates(pi, processor, prompts[:1], cfg)
    image = io.cell_to_image(prompts[0]["image"], "p")
    texts = [s["response"] for s in samples]
    rewards = guidance_rewards(
        pi, ref, processor, [image] * 3, [prompts[0]["question"]] * 3, texts, 0.5
    )
    assert rows[0]["rewards"] == pytest.approx(rewards, abs=1e-6)  # other batch, float32
    best = max(range(3), key=lambda i: (rewards[i], -i))
    assert rows[0]["response"] == texts[best] and rows[0]["sample_idx"] == best
    assert all(r["reward"] == max(r["rewards"]) and len(r["rewards"]) == 3 for r in rows)
