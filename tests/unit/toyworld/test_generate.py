import hashlib
from collections import Counter

import numpy as np
import pytest

from mmrlaif import io
from mmrlaif.config import WorldConfig
from mmrlaif.toyworld import build_world, make_scenes, object_names, partner_of, toy_lexicon
from mmrlaif.toyworld.annotate import annotate_caption, join_list, negative_objects
from mmrlaif.toyworld.generate import object_statistics, sample_objects


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_world_other_seed_other_world(tmp_path):
    cfg = WorldConfig(seed=3, n_train=12, n_align=4, n_eval=6)
    a = build_world(cfg, tmp_path / "a")
    b = build_world(cfg, tmp_path / "b")
    c = build_world(WorldConfig(seed=4, n_train=12, n_align=4, n_eval=6), tmp_path / "c")
    for name in (
        "sft.parquet",
        "prompts_align.parquet",
        "prompts_eval.parquet",
        "pope_eval.parquet",
    ):
        assert digest(a.root / name) == digest(b.root / name), name
        assert digest(a.root / name) != digest(c.root / name), name


def test_splits_are_disjoint_and_sized(small_world):
    ids = {}
    for split, path in [
        ("train", small_world.sft),
        ("align", small_world.prompts("align")),
        ("eval", small_world.prompts("eval")),
    ]:
        rows = io.read_rows(path)
        ids[split] = {hashlib.sha256(r["image"]["bytes"]).hexdigest() for r in rows}
    assert len(ids["train"]) == 40 and len(ids["align"]) == 10 and len(ids["eval"]) == 12
    assert not ids["train"] & ids["align"]
    assert not ids["train"] & ids["eval"]
    assert not ids["align"] & ids["eval"]


def test_cooccurrence_prior_holds():
    cfg = WorldConfig(seed=0)
    rng = np.random.default_rng(0)
    scenes = [sample_objects(rng, cfg) for _ in range(3000)]
    with_cup = [s for s in scenes if "cup" in s]
    with_car = [s for s in scenes if "car" in s]
    p_saucer_given_cup = sum("saucer" in s for s in with_cup) / len(with_cup)
    p_saucer_given_car = sum("saucer" in s for s in with_car) / len(with_car)
    assert p_saucer_given_cup > 0.7  # partner_prob 0.7, plus drawing the partner on its own
    assert p_saucer_given_car < 0.4
    assert all(
        cfg.min_objects <= len(s) <= cfg.max_objects and len(set(s)) == len(s) for s in scenes
    )


def test_annotator_hallucinates_only_absent_partners_at_rate_q():
    lexicon = toy_lexicon()
    rng = np.random.default_rng(1)
    q = 0.5
    opportunities = 0
    inserted = 0
    for _ in range(2000):
        objects = ["cup", "car"]  # cup's partner saucer is absent: one opportunity
        caption, hallucinated = annotate_caption(objects, rng, q, synonym_rate=0.3)
        named = set(lexicon.objects_in(caption))
        assert set(objects) <= named  # the annotator never drops a present object
        assert named - set(objects) == set(hallucinated) <= {"saucer"}
        opportunities += 1
        inserted += bool(hallucinated)
    assert abs(inserted / opportunities - q) < 0.04


def test_no_hallucination_when_partner_present_or_rate_zero():
    rng = np.random.default_rng(2)
    for _ in range(200):
        _, h = annotate_caption(["cup", "saucer", "dog"], rng, 0.0, 0.2)
        assert h == []
        _, h = annotate_caption(["cup", "saucer"], rng, 1.0, 0.2)
        assert h == []


def test_sft_questions_balanced_with_adversarial_negatives(small_world):
    rows = io.read_rows(small_world.sft)
    lexicon = toy_lexicon()
    questions = [r for r in rows if r["kind"] == "yesno"]
    answers = Counter(r["answer"] for r in questions)
    assert answers["Yes"] == answers["No"] == 40
    n_partner_negatives = 0
    for r in questions:
        (asked,) = lexicon.objects_in(r["question"])
        assert (asked in r["objects"]) == (r["answer"] == "Yes")
        n_partner_negatives += r["answer"] == "No" and any(
            partner_of(o) == asked for o in r["objects"]
        )
    assert n_partner_negatives > 0
    captions = [r for r in rows if r["kind"] == "caption"]
    assert len(captions) == 80 and all(r["answer"].strip() for r in captions)


def test_pope_rows_balanced_per_category(small_world):
    rows = io.read_rows(small_world.pope)
    for category in ("random", "popular", "adversarial"):
        these = [r for r in rows if r["category"] == category]
        assert sum(r["label"] for r in these) == sum(not r["label"] for r in these) > 0
    # adversarial negatives are the absent partners whenever the image has one
    prompts = {r["prompt_id"]: r["objects"] for r in io.read_rows(small_world.prompts("eval"))}
    for r in rows:
        objects = prompts[r["prompt_id"]]
        assert r["label"] == (r["object"] in objects)
        partners = {partner_of(o) for o in objects} - set(objects) - {None}
        if r["category"] == "adversarial" and not r["label"] and partners:
            assert r["object"] in partners


def test_negative_ranking_rules():
    rng = np.random.default_rng(0)
    scenes = make_scenes(WorldConfig(seed=0), "train", 300)
    freq, cooc = object_statistics(scenes)
    adv = negative_objects(["cup", "car"], "adversarial", rng, freq, cooc)
    assert adv[0] == "saucer" and "cup" not in adv and "car" not in adv
    pop = negative_objects(["cup"], "popular", rng, freq, cooc)
    assert [freq[n] for n in pop] == sorted((freq[n] for n in pop), reverse=True)
    assert sorted(negative_objects(["cup"], "random", rng, freq, cooc)) == sorted(
        set(object_names()) - {"cup"}
    )
    with pytest.raises(ValueError, match="unknown POPE category 'weird'"):
        negative_objects(["cup"], "weird", rng, freq, cooc)


def test_every_world_name_is_in_the_lexicon():
    lexicon = toy_lexicon()
    from mmrlaif.toyworld.vocab import OBJECTS

    for kind in OBJECTS:
        for name in (kind.name, *kind.synonyms):
            assert lexicon.canonical(name) == kind.name


def test_join_list_and_empty_caption():
    assert join_list(["a cup"]) == "a cup"
    assert join_list(["a cup", "a dog", "a car"]) == "a cup, a dog and a car"
    with pytest.raises(ValueError, match="empty object list"):
        join_list([])


def test_inverse_frequency_positives_ask_rare_objects_more_often():
    from mmrlaif.toyworld.generate import sft_rows

    def yes_share(weighting):
        cfg = WorldConfig(seed=5, n_train=400, yesno_per_image=2, positive_weighting=weighting)
        scenes = make_scenes(cfg, "train", cfg.n_train)
        frequency, _ = object_statistics(scenes)
        rows, _ = sft_rows(scenes, cfg, frequency)
        lex = toy_lexicon()
        asked = Counter(
            lex.objects_in(r["question"])[0]
            for r in rows
            if r["kind"] == "yesno" and r["answer"] == "Yes"
        )
        # "yes" questions per image holding the object: the chance a present object is asked
        held = Counter(o for s in scenes for o in s.objects)
        rates = [asked[o] / held[o] for o in held]
        return max(rates) / min(rates), asked

    uniform_spread, _ = yes_share("uniform")
    balanced_spread, asked = yes_share("inverse_frequency")
    # with inverse-frequency weights a rare object present in a crowded image is asked about
    # more often than under uniform choice, which evens out the "yes" examples per object
    assert balanced_spread > uniform_spread
    common, rare = asked.most_common()[0][1], asked.most_common()[-1][1]
    assert rare / common > 0.5
