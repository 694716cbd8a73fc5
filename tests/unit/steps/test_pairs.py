"""The pairs step over pipeline artifacts: RLAIF-V pairs, optionally joined by POVID pairs."""

import dataclasses

import pytest

from mmrlaif import artifacts
from mmrlaif.config import Config, ConfigError
from mmrlaif.io import read_rows, write_table
from mmrlaif.steps.pairs import pairs_step


def _feedback(small_world, folder):
    """Two answers per align prompt: one right (score 0), one naming an absent cup (-1)."""
    rows = []
    for p in read_rows(small_world.prompts("align")):
        for idx, (text, score) in enumerate(((p["answer"], 0.0), (p["answer"] + " A cup.", -1.0))):
            rows.append(
                {"prompt_id": p["prompt_id"], "sample_idx": idx, "response": text, "score": score}
            )
    write_table(rows, artifacts.table(folder, "feedback"))
    return len(rows) // 2


def _config(**pairs) -> Config:
    cfg = Config()
    return dataclasses.replace(
        cfg, pairs=dataclasses.replace(cfg.pairs, balance_lengths=False, **pairs)
    )


def test_add_povid_joins_the_policys_povid_pairs(small_world, tiny_model, tmp_path):
    prompts = _feedback(small_world, tmp_path / "feedback")
    model, processor = tiny_model
    model.save_pretrained(tmp_path / "policy" / "model")
    processor.save_pretrained(tmp_path / "policy" / "model")

    alone = pairs_step(_config(), 1, tmp_path / "feedback", small_world.root, tmp_path / "a")
    assert alone.pairs_out == prompts and alone.added_povid == {}
    assert len(read_rows(artifacts.table(tmp_path / "a", "pairs"))) == prompts

    both = pairs_step(
        _config(add_povid=True),
        1,
        tmp_path / "feedback",
        small_world.root,
        tmp_path / "b",
        tmp_path / "policy",
    )
    rows = read_rows(artifacts.table(tmp_path / "b", "pairs"))
    sources = [r["source"] for r in rows]
    assert both.pairs_out == prompts  # the RLAIF-V count stays its own
    assert sources.count("rlaifv") == prompts
    assert both.added_povid == {s: sources.count(s) for s in ("povid_text", "povid_noise")}
    assert both.added_povid["povid_noise"] > 0 and both.added_povid["povid_text"] > 0
    assert len(rows) == prompts + sum(both.added_povid.values())
    assert artifacts.read_stats(tmp_path / "b")["added_povid"] == both.added_povid


def test_add_povid_needs_the_policy(small_world, tmp_path):
    _feedback(small_world, tmp_path / "feedback")
    with pytest.raises(ConfigError, match="add_povid"):
        pairs_step(
            _config(add_povid=True), 1, tmp_path / "feedback", small_world.root, tmp_path / "o"
        )


def test_yes_no_replay_joins_only_existing_pairs(small_world, tmp_path):
    prompts = _feedback(small_world, tmp_path / "feedback")
    stats = pairs_step(
        _config(replay_yesno=3), 1, tmp_path / "feedback", small_world.root, tmp_path / "r"
    )
    sources = [r["source"] for r in read_rows(artifacts.table(tmp_path / "r", "pairs"))]
    assert stats.replayed_yesno == 3 == sources.count("replay_yesno")
    assert sources.count("rlaifv") == prompts
