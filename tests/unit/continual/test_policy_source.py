"""Resolving the starting policy: hub ids, folders, S3 folders and registry references
(against a real MLflow registry on SQLite)."""

import json
from pathlib import Path

import pytest

from mmrlaif.continual import lineage
from mmrlaif.continual.source import PolicySourceError, parse_registry_ref, resolve_policy
from mmrlaif.io import s3
from mmrlaif.tracking import mlflow_client as mf
from mmrlaif.tracking.registry import register_model


def _model(folder: Path, marker: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"marker": marker}))
    return folder


def test_parse_registry_refs():
    assert parse_registry_ref("models:/policy@champion") == ("policy", "champion", None)
    assert parse_registry_ref("models:/policy/12") == ("policy", None, "12")
    for bad in ("models:/policy", "models:/policy@", "models:/a/b/c"):
        with pytest.raises(PolicySourceError, match="is not models:/<name>@<alias>"):
            parse_registry_ref(bad)


def test_hub_ids_and_folders_pass_through(tmp_path):
    assert resolve_policy("llava-hf/llava-1.5-7b-hf", None, tmp_path).kind == "hub"
    folder = _model(tmp_path / "m", "local")
    resolved = resolve_policy(str(folder), None, tmp_path / "dl")
    assert (resolved.kind, resolved.path) == ("local", str(folder))


def test_registry_alias_and_version_resolve_and_download(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mf.client(uri)
    exp = client.create_experiment("e", artifact_location=str(tmp_path / "artifacts"))
    versions = []
    for marker in ("first", "second"):
        run = client.create_run(exp).info.run_id
        versions.append(register_model(uri, run, _model(tmp_path / marker, marker), "policy"))
    client.set_registered_model_alias("policy", "champion", versions[0])

    by_alias = resolve_policy("models:/policy@champion", uri, tmp_path / "a")
    assert (by_alias.kind, by_alias.version, by_alias.alias) == (
        "registry",
        versions[0],
        "champion",
    )
    assert json.loads((Path(by_alias.path) / "config.json").read_text())["marker"] == "first"
    by_version = resolve_policy(f"models:/policy/{versions[1]}", uri, tmp_path / "b")
    assert json.loads((Path(by_version.path) / "config.json").read_text())["marker"] == "second"

    with pytest.raises(PolicySourceError, match="has no alias 'best'.*seed the loop first"):
        resolve_policy("models:/policy@best", uri, tmp_path / "c")
    with pytest.raises(PolicySourceError, match="no MLflow tracking URI"):
        resolve_policy("models:/policy@champion", None, tmp_path / "d")

    # what the base policy records becomes the run's lineage
    base = tmp_path / "base"
    base.mkdir()
    (base / "policy_source.json").write_text(json.dumps(by_alias.to_dict()))
    assert lineage(tmp_path / "no-world", base) == {
        "lineage.parent_source": "models:/policy@champion",
        "lineage.parent_version": versions[0],
    }


def test_s3_folders_are_downloaded(tmp_path, s3_env):
    uri = f"s3://{s3_env.bucket}/models/v1"
    s3.upload_tree(_model(tmp_path / "m", "on-s3"), uri)
    resolved = resolve_policy(uri, None, tmp_path / "dl")
    assert resolved.kind == "s3"
    assert json.loads((Path(resolved.path) / "config.json").read_text())["marker"] == "on-s3"


def test_a_twin_is_built_into_the_download_folder(tmp_path):
    from mmrlaif.models.load import load_vlm

    resolved = resolve_policy("twin:llava@1", None, tmp_path)
    assert resolved.kind == "twin" and Path(resolved.path).parent == tmp_path
    model, _ = load_vlm(resolved.path)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    with pytest.raises(PolicySourceError, match="twin:<family>"):
        resolve_policy("twin:nope", None, tmp_path)
