"""The ablation runner at its smallest (one seed, two variants, one iteration) through the CLI:
the structure of its table, the shared base policy and the strong labeler, not the numbers."""

import json

import pytest
import yaml

from mmrlaif.cli import main
from tests.integration.test_pipeline import MINIMAL

pytestmark = pytest.mark.integration


def test_ablate_writes_a_table_a_plot_shares_the_base_policy_and_resumes(
    tmp_path, monkeypatch, capsys
):
    preset = tmp_path / "preset.yaml"
    preset.write_text(yaml.safe_dump({**MINIMAL, "run": {"output_dir": str(tmp_path / "run")}}))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # each run: its own local store
    out = tmp_path / "ablation"
    argv = ["ablate", "--config", str(preset), "--variants", "iterative,strong_labeler"]
    assert main([*argv, "--seeds", "0", "--out", str(out), "--jobs", "2"]) == 0  # both at once
    printed = capsys.readouterr().out
    table = (out / "results.md").read_text()
    assert table in printed
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| variant | seeds | ObjHal | change vs base |")
    assert [r.split(" | ")[0] for r in rows[2:]] == ["| iterative", "| strong_labeler"]
    assert (out / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    results = json.loads((out / "results.json").read_text())
    assert [(r["variant"], r["seed"], len(r["headlines"])) for r in results["runs"]] == [
        ("iterative", 0, 2),
        ("strong_labeler", 0, 2),
    ]
    # both variants started from the seed's one base policy, fine-tuned once
    for variant in ("iterative", "strong_labeler"):
        [source] = (out / "seed0" / variant).glob("kfp/*/base-policy/policy/policy_source.json")
        resolved = json.loads(source.read_text())
        assert resolved["kind"] == "local" and resolved["path"].endswith("seed0/base/model")
    log = (out / "seed0" / "iterative" / "ablation.log").read_text()
    assert "rlaifv pipeline, 1 iteration(s):" in log
    assert "final policy: test-policy version " in log  # the run's registration, printed
    base = [r["headlines"][0] for r in results["runs"]]
    assert base[0] == base[1]  # hence the same starting figures
    # the strong labeler: fine-tuned once on its own world (more yes/no questions, a deeper
    # decoder), evaluated, and the labeler of the variant's run (with RLAIF-V's threshold)
    checker = yaml.safe_load((out / "checker" / "config.yaml").read_text())
    assert checker["world"]["yesno_per_image"] == 12
    assert checker["model"]["tiny"]["text_layers"] == 4
    assert 0 <= results["checker"]["pope_adversarial_accuracy"] <= 1
    assert "Strong labeler: POPE adversarial accuracy" in table
    labeling = yaml.safe_load((out / "seed0" / "strong_labeler" / "config.yaml").read_text())
    assert labeling["labeling"]["labeler"] == "model"
    assert labeling["labeling"]["labeler_name_or_path"] == str(out / "checker" / "model")
    assert labeling["labeling"]["reject_threshold"] == 0.5
    # a second call finds every run finished with the same config and reuses it
    logs = [*out.glob("seed0/*/ablation.log"), out / "checker" / "ablation.log"]
    stamps = {p: p.stat().st_mtime for p in logs}
    assert main([*argv, "--seeds", "0", "--out", str(out)]) == 0
    assert {p: p.stat().st_mtime for p in logs} == stamps
    assert json.loads((out / "results.json").read_text())["runs"] == results["runs"]
    assert main([*argv[:3], "--variants", "both", "--out", str(out)]) == 2
