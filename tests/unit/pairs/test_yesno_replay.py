"""Yes/no replay pairs (checker protection): drawn from the SFT data's yes/no questions."""

from mmrlaif.io import read_rows
from mmrlaif.models.chat import assistant_message
from mmrlaif.pairs.stage import yesno_replay_rows


def test_replay_pairs_prefer_the_right_answer(small_world):
    sft = read_rows(small_world.sft)
    yesno = [r for r in sft if r["kind"] == "yesno"]
    rows = yesno_replay_rows(sft, 5, seed=3)
    assert len(rows) == 5 and {r["source"] for r in rows} == {"replay_yesno"}
    by_id = {r["example_id"]: r for r in yesno}
    for row in rows:
        truth = by_id[row["prompt_id"]]["answer"]
        other = "No" if truth == "Yes" else "Yes"
        assert (row["chosen"], row["rejected"]) == (
            assistant_message(truth),
            assistant_message(other),
        )
        assert row["images"] == [by_id[row["prompt_id"]]["image"]]
    assert yesno_replay_rows(sft, 5, seed=3) == rows  # seeded
    assert yesno_replay_rows(sft, 5, seed=4) != rows
    assert len(yesno_replay_rows(sft, 10**6, seed=0)) == len(yesno)  # at most what there is
