import numpy as np
import pytest

from mmrlaif import io
from mmrlaif.models.chat import message_text
from mmrlaif.pairs.povid import (
    CooccurrenceInjector,
    noise_rows,
    online_noise_rows,
    text_injection_rows,
)
from mmrlaif.toyworld import toy_lexicon

COOC = {
    "cup": {"saucer": 0.8, "dog": 0.1, "cup": 0.0},
    "dog": {"ball": 0.7, "cup": 0.1},
    "car": {"dog": 0.2},
}


def test_injects_the_most_cooccurring_absent_object_after_its_partner():
    injector = CooccurrenceInjector(toy_lexicon(), COOC)
    rng = np.random.default_rng(0)
    # cup -> saucer (0.8) beats dog -> ball (0.7)
    assert (
        injector.inject("There is a mug and a dog.", ["cup", "dog"], rng)
        == "There is a mug and a saucer and a dog."
    )
    # saucer present: the next best is ball after dog
    assert (
        injector.inject("There is a cup, a saucer and a dog.", ["cup", "saucer", "dog"], rng)
        == "There is a cup, a saucer and a dog and a ball."
    )
    # nothing co-occurs with a book
    assert injector.inject("There is a book.", ["book"], rng) is None


def test_text_rows_and_skips(small_world):
    prompts = io.read_rows(small_world.prompts("align"))[:4]
    prompts[1]["answer"] = ""
    injector = CooccurrenceInjector(toy_lexicon(), COOC)
    rows, skips = text_injection_rows(prompts, injector, seed=0)
    assert skips.get("no_answer") == 1
    assert len(rows) + sum(skips.values()) == 4
    lexicon = toy_lexicon()
    for r in rows:
        assert r["source"] == "povid_text"
        chosen = set(lexicon.objects_in(message_text(r["chosen"])))
        rejected = set(lexicon.objects_in(message_text(r["rejected"])))
        assert chosen < rejected and len(rejected - chosen) == 1


def test_world_answers_are_correct_captions(small_world):
    lexicon = toy_lexicon()
    for p in io.read_rows(small_world.prompts("align")):
        assert set(lexicon.objects_in(p["answer"])) == set(p["objects"])


def test_noise_rows_are_seeded(small_world, tiny_model):
    model, processor = tiny_model
    prompts = io.read_rows(small_world.prompts("align"))[:3]
    a, skips_a = noise_rows(model, processor, prompts, seed=1, max_new_tokens=6)
    b, _ = noise_rows(model, processor, prompts, seed=1, max_new_tokens=6)
    assert a == b
    assert len(a) + sum(skips_a.values()) == 3
    for r in a:
        assert r["source"] == "povid_noise" and r["chosen"] != r["rejected"]


def overfit_lm(prompt, target):
    import torch

    from mmrlaif.toyworld.tiny import build_tiny_causal_lm

    model, tok = build_tiny_causal_lm([prompt + target], hidden=64, layers=2)
    # the generator sends the prompt as a chat user turn: overfit to what the template renders
    user = [{"role": "user", "content": prompt}]
    chat = tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    batch = tok([chat + target], return_tensors="pt")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(100):
        model(**batch, labels=batch["input_ids"]).loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval(), tok


def test_llm_injector_with_a_tiny_lm():
    from mmrlaif.labeling.llm import TextGenerator
    from mmrlaif.pairs.povid import INJECT_PROMPT, LLMInjector

    answer = "There is a cup."
    prompt = INJECT_PROMPT.format(answer=answer)
    rng = np.random.default_rng(0)
    model, tok = overfit_lm(prompt, " There is a cup and a saucer.</s>")
    injector = LLMInjector(lambda budget: TextGenerator(model, tok, budget))
    assert injector.inject(answer, ["cup"], rng) == "There is a cup and a saucer."
    assert injector.counts == {}
    # an LLM that returns the answer unchanged yields no pair, and is counted
    echo, tok2 = overfit_lm(prompt, " There is a cup.</s>")
    lazy = LLMInjector(lambda budget: TextGenerator(echo, tok2, budget))
    assert lazy.inject(answer, ["cup"], rng) is None
    assert lazy.counts == {"unchanged_injection": 1}


def test_llm_injector_over_an_endpoint_loads_nothing(monkeypatch):
    import transformers

    from mmrlaif.config import ConfigError, ModelConfig, POVIDConfig
    from mmrlaif.models.openai_client import OpenAITextGenerator
    from mmrlaif.pairs.povid import inject_budget
    from mmrlaif.pairs.stage import make_injector

    def no_loading(*args, **kwargs):
        raise AssertionError("nothing should be loaded when povid.llm_endpoint is set")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_loading)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", no_loading)
    endpoint = "http://127.0.0.1:8000/v1"
    cfg = POVIDConfig(injector="llm", llm_name_or_path="served-llm", llm_endpoint=endpoint)
    injector = make_injector(cfg, ModelConfig(), None)
    generate = injector.generator(inject_budget("There is a cup."))
    assert isinstance(generate, OpenAITextGenerator)
    assert (generate.model, generate.budget) == ("served-llm", 32 + 4 * 4)
    assert generate.client.url("/completions") == endpoint + "/completions"
    with pytest.raises(ConfigError, match="povid.llm_name_or_path .*povid.llm_endpoint"):
        make_injector(POVIDConfig(injector="llm", llm_endpoint=endpoint), ModelConfig(), None)


def test_llm_injector_keeps_the_whole_rewrite_with_a_budget_from_the_answer():
    from mmrlaif.pairs.povid import INJECT_PROMPT, LLMInjector

    prompts, budgets = [], []
    rewrite = "Rewritten: There is a cup and a saucer.\nThe saucer is blue, next to a fork."

    def generators(budget):
        budgets.append(budget)
        return lambda p: prompts.append(p) or rewrite

    injector = LLMInjector(generators)
    rng = np.random.default_rng(0)
    short, long = "There is a cup.", " ".join(["A cup on a long table."] * 30)
    # every line of the rewrite is kept; only the echoed label goes
    expected = "There is a cup and a saucer.\nThe saucer is blue, next to a fork."
    assert injector.inject(short, ["cup"], rng) == expected
    assert prompts == [INJECT_PROMPT.format(answer=short)]
    # budget: 32 + 4 per word (4 words; 180 words), never below the answer's own length
    assert injector.inject(long, ["cup"], rng) == expected
    assert budgets == [32 + 4 * 4, 32 + 4 * 180]
    assert injector.inject(short, ["cup"], rng) == expected
    assert budgets == [48, 752]  # one generator per budget, reused


def test_online_noise_rows_hold_how_the_rejection_is_built(small_world, tmp_path):
    from mmrlaif.config import ModelConfig, POVIDConfig
    from mmrlaif.pairs.stage import povid_stage
    from mmrlaif.pairs.table import NoiseSpec, online_spec

    prompts = io.read_rows(small_world.prompts("align"))[:3]
    prompts[2]["answer"] = " "
    rows, skips = online_noise_rows(prompts, NoiseSpec(300, True, "policy"))
    assert skips == {"no_answer": 1} and len(rows) == 2
    for row, prompt in zip(rows, prompts, strict=False):
        assert row["source"] == "povid_noise"
        assert message_text(row["chosen"]) == prompt["answer"].strip()
        assert message_text(row["rejected"]) == (
            "[online noise rejection: step=300 clamp=yes reference_tokens=policy]"
        )
        assert online_spec(row) == NoiseSpec(300, True, "policy")
    # the pairs stage builds them without the policy (nothing to load: no such folder)
    cfg = POVIDConfig(sources=("povid_noise",), noise_step=400)
    stats = povid_stage(
        ModelConfig(), cfg, tmp_path / "no-policy", small_world.prompts("align"), tmp_path / "p"
    )
    written = io.read_rows(tmp_path / "p")
    assert stats.by_source == {"povid_noise": len(written)} and len(written) > 0
    assert {online_spec(r) for r in written} == {NoiseSpec(400, False, "own")}
