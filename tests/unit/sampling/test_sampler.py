import math

import pytest
import torch

from mmrlaif import io
from mmrlaif.config import SamplingConfig
from mmrlaif.models.seeded import SeededGumbelSampler, sample_seed
from mmrlaif.sampling.sampler import sample_candidates


def test_sample_seed_depends_on_every_part():
    base = sample_seed(0, "p1", 0)
    assert base == sample_seed(0, "p1", 0)
    assert (
        len({base, sample_seed(1, "p1", 0), sample_seed(0, "p2", 0), sample_seed(0, "p1", 1)}) == 4
    )
    assert 0 <= base < 2**63


def test_gumbel_processor_keeps_one_token_and_matches_the_softmax():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    counts = torch.zeros(3)
    draws = 4000
    proc = SeededGumbelSampler([7], temperature=1.0)
    for _ in range(draws):
        out = proc(torch.zeros(1, 1, dtype=torch.long), logits.clone())
        assert torch.isfinite(out).sum() == 1
        counts[out.argmax()] += 1
    freq = counts / draws
    # binomial standard error at p = 0.5 and 4000 draws is about 0.008; allow 4 of them
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.2]), atol=0.032)


def test_temperature_sharpens():
    # at T = 0.25 the probabilities become softmax(4 log p) = p^4 / sum p^4
    p = torch.tensor([0.5, 0.3, 0.2])
    expected = p**4 / (p**4).sum()
    proc = SeededGumbelSampler([1], temperature=0.25)
    counts = torch.zeros(3)
    for _ in range(4000):
        counts[proc(torch.zeros(1, 1, dtype=torch.long), torch.log(p)[None]).argmax()] += 1
    assert torch.allclose(counts / 4000, expected, atol=0.035)
    assert math.isclose(float(expected.sum()), 1.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        SeededGumbelSampler([1], temperature=0.0)


def test_samples_reproduce_and_do_not_depend_on_batching(small_world, tiny_model):
    model, processor = tiny_model
    prompts = io.read_rows(small_world.prompts("align"))[:4]
    cfg = SamplingConfig(n=3, temperature=1.0, max_new_tokens=6, prompts_per_batch=4, seed=5)
    rows, stats = sample_candidates(model, processor, prompts, cfg)
    again, _ = sample_candidates(model, processor, prompts, cfg)
    one_by_one, _ = sample_candidates(
        model, processor, prompts, SamplingConfig(**{**cfg.__dict__, "prompts_per_batch": 1})
    )
    assert rows == again == one_by_one
    assert [(r["prompt_id"], r["sample_idx"]) for r in rows] == [
        (p["prompt_id"], j) for p in prompts for j in range(3)
    ]
    assert stats.samples_out == 12 and stats.prompts_in == 4
    other, _ = sample_candidates(
        model, processor, prompts, SamplingConfig(**{**cfg.__dict__, "seed": 6})
    )
    assert [r["response"] for r in other] != [r["response"] for r in rows]
    # an untrained model samples widely: the n samples of a prompt are not all identical
    assert len({r["response"] for r in rows if r["prompt_id"] == prompts[0]["prompt_id"]}) > 1


def test_missing_image_names_the_prompt(small_world, tiny_model):
    model, processor = tiny_model
    prompts = io.read_rows(small_world.prompts("align"))[:2]
    prompts[1]["image"] = None
    with pytest.raises(io.ImageError, match=f"{prompts[1]['prompt_id']}: image is missing"):
        sample_candidates(model, processor, prompts, SamplingConfig(n=2, max_new_tokens=4))
