"""Every real preset's tiny twin through ``mmrlaif run`` (kfp.local), as a user would run it.

The twin extends the real preset and swaps the policy for a tiny random twin of the same
architecture (``twin:<family>``): the real model, processor, tokenizer layout and chat format,
through every task of the pipeline: base policy, sampling, labeling by the family's own model
(prefix cache), pairs, DPO (LoRA or full, checkpointing as the real preset says), evaluation,
selection and tracking.
"""

import json
from pathlib import Path

import pytest

from mmrlaif.cli import main
from mmrlaif.models.load import load_vlm

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TWINS = sorted((ROOT / "configs").glob("*/*.tiny.yaml"))


@pytest.mark.parametrize("preset", TWINS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_tiny_twin_of_a_real_preset_runs_the_whole_pipeline(preset, tmp_path, monkeypatch):
    # the run's own store (set here, so the test restores whatever the CLI exports)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    out = tmp_path / "run"
    code = main(["run", "--config", str(preset), "--set", f"run.output_dir={out}"])
    assert code == 0
    (run_root,) = (out / "kfp").iterdir()
    source = json.loads((run_root / "base-policy" / "policy" / "policy_source.json").read_text())
    assert source["kind"] == "twin" and source["spec"].startswith("twin:")
    dpo = json.loads(next(run_root.glob("**/train-dpo/trained/dpo.json")).read_text())
    assert dpo["n_pairs"] > 0, dpo  # trained, not passed on
    model, _ = load_vlm(str(next(run_root.glob("**/train-dpo/trained/model"))))
    assert type(model).__name__.endswith("ForConditionalGeneration")
    report = json.loads(next(run_root.glob("**/evaluate/report/eval.json")).read_text())
    assert report["objects"]["n_responses"] == 4
    # selection on a held-out benchmark slice (the world's validation split in AMBER's layout),
    # the trained run's checkpoints competing with its final model, never the toy val figures
    evaluated = next(run_root.glob("**/evaluate-2/report/select.json"))
    select = json.loads(evaluated.read_text())
    assert select["benchmark"] == "amber" and select["metric"] == "amber_object_f1"
    assert "amber_chair" in select["figures"]["final"]
    steps = max(h.get("step", 0) for h in dpo["history"])
    assert (f"step-{steps - 1}" in select["figures"]) == (steps > 1), select["figures"]
    decision = json.loads(next(run_root.glob("**/select-policy/report/selection.json")).read_text())
    assert decision["metric"] == "amber_object_f1" and decision["candidate"] == select["best"]
    if preset.name in PRESET_CHECKS:
        PRESET_CHECKS[preset.name](run_root)


def _povid_stages(run_root):
    """POVID's two stages: text rejections only, then both, the noise rejection built online."""
    from mmrlaif.io import read_rows
    from mmrlaif.pairs.table import REFERENCE_NOISE, online_spec

    for task, sources in (("", {"povid_text"}), ("-2", {"povid_text", "povid_noise"})):
        rows = read_rows(next(run_root.glob(f"povid-pairs{task}/pairs/pairs.parquet")))
        assert {r["source"] for r in rows} == sources
        noise = [r for r in rows if r["source"] == "povid_noise"]
        assert all(online_spec(r) == REFERENCE_NOISE for r in noise)
        dpo = json.loads(next(run_root.glob(f"train-dpo{task}/trained/dpo.json")).read_text())
        assert dpo["sources"] == {s: sum(r["source"] == s for r in rows) for s in sources}
        logged = {k for h in dpo["history"] for k in h}
        assert ("noise/tokens_as_chosen" in logged) == ("povid_noise" in sources)
        assert max(h["epoch"] for h in dpo["history"]) == 1.0  # each stage's own epochs


PRESET_CHECKS = {"povid.tiny.yaml": _povid_stages}
