import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmrlaif.cli import main

ROOT = Path(__file__).resolve().parents[2]

TINY = [
    "world.n_train=24",
    "world.n_align=4",
    "world.n_eval=6",
    "model.tiny.vision_hidden=32",
    "model.tiny.vision_layers=1",
    "model.tiny.patch_size=16",
    "model.tiny.text_hidden=32",
    "model.tiny.text_layers=1",
    "sft.trainer.max_steps=3",
    "sft.trainer.disable_tqdm=true",
    "eval.max_new_tokens=6",
]


@pytest.mark.integration
def test_demo_runs_end_to_end(tmp_path, capsys):
    sets = [a for s in [*TINY, f"run.output_dir={tmp_path}"] for a in ("--set", s)]
    assert main(["demo", "--config", str(ROOT / "configs/tiny_cpu.yaml"), *sets]) == 0
    out = capsys.readouterr().out
    for figure in ("object_hal", "response_hal", "cover", "pope_adversarial_accuracy"):
        assert figure in out
    report = json.loads((tmp_path / "eval_base.json").read_text())
    assert report["objects"]["n_responses"] == 6
    assert (tmp_path / "sft" / "model" / "config.json").is_file()
    assert (tmp_path / "world" / "prompts_align.parquet").is_file()


@pytest.mark.integration
def test_console_script_rejects_a_bad_config_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("world:\n  n_train: many\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mmrlaif.cli", "world", "--config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "world.n_train" in proc.stderr


def test_unknown_override_key_fails_cleanly(capsys):
    code = main(
        ["world", "--config", str(ROOT / "configs/tiny_cpu.yaml"), "--set", "world.colour=red"]
    )
    assert code == 2
    assert "world.colour" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("labeling.labeler=oracle", "labeling.labeler"),
        ("labeling.extractor=regex", "labeling.extractor"),
        ("model.name_or_path=/no/such/model", "model.name_or_path"),
        ("labeling.labeler_name_or_path=./missing-labeler", "labeling.labeler_name_or_path"),
    ],
)
def test_run_rejects_bad_names_and_missing_model_paths_before_starting(
    tmp_path, capsys, override, key
):
    args = ["run", "--config", str(ROOT / "configs/tiny_cpu.yaml"), "--set", override]
    args += ["--set", f"run.output_dir={tmp_path}"]
    assert main(args) == 2
    assert key in capsys.readouterr().err
    assert not (tmp_path / "kfp").exists()  # nothing ran
