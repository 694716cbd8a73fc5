import pytest

from mmrlaif.pairs.rlaifv import (
    SWEEP,
    Candidate,
    Pair,
    build_pairs,
    candidate_pairs,
    length_balance,
)


def cand(pid, idx, text, score):
    return Candidate(pid, idx, text, score)


def test_sweep_is_0_to_098_in_002_steps():
    assert SWEEP[0] == 0.0 and SWEEP[-1] == 0.98 and len(SWEEP) == 50


def test_candidate_pairs_gap_ties_and_identical_texts():
    group = [
        cand("p", 0, "a cup", 0),
        cand("p", 1, "a cup and a saucer", -1),
        cand("p", 2, "a cup ", -2),  # same text as 0 after strip: never paired with 0
        cand("p", 3, "a dog", -1),  # ties with 1: not paired with 1
    ]
    pairs = candidate_pairs(group)
    got = {(p.chosen.sample_idx, p.rejected.sample_idx) for p in pairs}
    # gaps >= 1: (0,1) 1, (0,3) 1, (1,2) 1, (3,2) 1; (0,2) identical text; (1,3) tie
    assert got == {(0, 1), (0, 3), (1, 2), (3, 2)}


def test_at_most_two_pairs_per_prompt_seeded():
    group = [cand("p", i, f"text {i}", -i) for i in range(4)]  # 6 candidate pairs
    a, stats = build_pairs(group, seed=0, balance_lengths=False)
    b, _ = build_pairs(group, seed=0, balance_lengths=False)
    assert len(a) == 2 and a == b and stats.pairs_out == 2
    draws = {
        tuple(
            sorted(
                (p.chosen.sample_idx, p.rejected.sample_idx)
                for p in build_pairs(group, seed=s, balance_lengths=False)[0]
            )
        )
        for s in range(20)
    }
    assert len(draws) > 1  # another seed draws other pairs


def test_skip_reasons_are_counted():
    cands = [
        cand("same", 0, "a cup", 0),
        cand("same", 1, "a cup", -3),
        cand("tie", 0, "a cup", -1),
        cand("tie", 1, "a dog", -1),
        cand("ok", 0, "a cup", 0),
        cand("ok", 1, "a dog", -1),
    ]
    pairs, stats = build_pairs(cands, seed=0)
    assert [p.prompt_id for p in pairs] == ["ok"]
    assert stats.skips == {"fewer_than_2_distinct": 1, "no_score_gap": 1}
    assert stats.prompts_in == 3 and stats.candidates_in == 6


def pair(cho_words, rej_words):
    return Pair("p", cand("p", 0, "w " * cho_words, 0), cand("p", 1, "w " * rej_words, -1))


def test_length_balance_by_hand():
    # excess = (rej - cho) / rej: p1 (2 vs 10) -> 0.8, p2 (5 vs 5) -> 0, p3 (6 vs 4) -> -0.5
    p1, p2, p3 = pair(2, 10), pair(5, 5), pair(6, 4)
    kept, r = length_balance([p1, p2, p3])
    # r < 0.8 keeps p2, p3: chosen mean 5.5, rejected mean 4.5 -> |1| / 4.5 = 0.222
    # r >= 0.8 keeps all:    chosen mean 13/3, rejected mean 19/3 -> 2 / (19/3) = 0.316
    assert kept == [p2, p3]
    assert r == 0.0  # the smallest ratio reaching the minimum


def test_length_balance_prefers_a_later_ratio_when_it_balances_better():
    # p1 excess 0.5 (5 vs 10), p2 excess -1 (10 vs 5)
    p1, p2 = pair(5, 10), pair(10, 5)
    kept, r = length_balance([p1, p2])
    # r < 0.5: only p2 -> |10 - 5| / 5 = 1.0; r >= 0.5: both -> |7.5 - 7.5| / 7.5 = 0
    assert kept == [p1, p2]
    assert r == pytest.approx(0.5)


def test_length_balance_empty():
    assert length_balance([]) == ([], None)


def test_responses_without_questions_never_enter_pairing():
    cands = [
        Candidate("p", 0, "Nothing to see.", 0.0, "no_claims"),
        Candidate("p", 1, "a cup", -1.0),
        Candidate("p", 2, "a cup and a dog and a car", -2.0),
        Candidate("p", 3, "", 0.0, "empty_response"),
        Candidate("q", 0, "?", 0.0, "unparsed_extraction"),
        Candidate("q", 1, "a dog", -1.0),
    ]
    pairs, stats = build_pairs(cands, seed=0, max_pairs_per_prompt=5, balance_lengths=False)
    # without the rule p would give (0,1), (0,2), (1,2) and (3,1), (3,2); q (0,1)
    assert [(p.chosen.sample_idx, p.rejected.sample_idx) for p in pairs] == [(1, 2)]
    assert stats.skips == {
        "candidates_no_claims": 1,
        "candidates_empty_response": 1,
        "candidates_unparsed_extraction": 1,
        "fewer_than_2_distinct": 1,  # q: one candidate left
    }
    assert stats.candidates_in == 6 and stats.prompts_in == 2
