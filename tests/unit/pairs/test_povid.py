import numpy as np

from mmrlaif import io
from mmrlaif.pairs.povid import CooccurrenceInjector, noise_rows, text_injection_rows
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
        chosen = set(lexicon.objects_in(r["chosen"]))
        rejected = set(lexicon.objects_in(r["rejected"]))
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
