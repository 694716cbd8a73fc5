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
    assert report["chair"]["n_responses"] == 4
