"""S3 artifacts through boto3, against a real (loopback) moto_server and a fault proxy."""

import hashlib
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from mmrlaif import io
from mmrlaif.io import s3, s3_ops
from tests import servers

MIB = 1024 * 1024
# Fail fast: one botocore attempt per request, so only our whole-operation retry is at work.
NO_BOTO_RETRY = {"max_attempts": 1, "retry_attempts": 3, "retry_base_delay_s": 0.01}


def _settings(endpoint: str, **overrides) -> s3.S3Settings:
    return s3.S3Settings(endpoint_url=endpoint, **overrides)


def _model_dir(root: Path, big: int = 200_000) -> Path:
    """A folder shaped like a saved model, nested files and an empty file included."""
    model = root / "model"
    (model / "tokenizer").mkdir(parents=True)
    (model / "sub" / "deep").mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"hidden": 32}))
    (model / "model.safetensors").write_bytes(os.urandom(big))
    (model / "tokenizer" / "tokenizer.json").write_text('{"vocab": {}}')
    (model / "sub" / "deep" / "x.bin").write_bytes(os.urandom(1000))
    (model / "sub" / "empty.txt").write_bytes(b"")
    return model


def _files(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _multipart_uploads(moto: servers.MotoServer, bucket: str) -> list:
    return moto.boto3_client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


# --------------------------------------------------------------------------------------------
# URIs and settings (no server)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    ["/tmp/x.parquet", "s3:/bucket/k", "s3://", "s3://Bad_Bucket/k", "s3://ab/k", "s3://b..x/k"],
)
def test_malformed_uri_is_named(uri):
    with pytest.raises(ValueError, match="s3:|not an S3 URI") as info:
        s3.parse_s3(uri, require_key=True)
    assert repr(uri) in str(info.value)


def test_parse_and_is_s3():
    assert s3.parse_s3("s3://my-bucket/a/b.parquet") == ("my-bucket", "a/b.parquet")
    assert s3.parse_s3("s3://my-bucket") == ("my-bucket", "")
    with pytest.raises(ValueError, match="no object key"):
        s3.parse_s3("s3://my-bucket/", require_key=True)
    with pytest.raises(ValueError, match="empty path segment"):
        s3.parse_s3("s3://my-bucket/a//b")
    assert s3.is_s3("s3://b/k") and not s3.is_s3("/data/s3/k") and not s3.is_s3("k")
    # A Path around a URI collapses "//"; it is still recognised, never a local "s3:" folder.
    assert s3.is_s3(Path("s3://my-bucket/a/b")) and not s3.is_s3("s3:/x")
    assert s3.parse_s3(Path("s3://my-bucket/a/b")) == ("my-bucket", "a/b")


def test_settings_from_env():
    settings = s3.S3Settings.from_env(
        {"MMRLAIF_S3_ENDPOINT_URL": "http://127.0.0.1:9", "MMRLAIF_S3_MULTIPART_CHUNK_MB": "8"}
    )
    assert settings == s3.S3Settings(endpoint_url="http://127.0.0.1:9", multipart_chunk_mb=8)
    assert s3.S3Settings.from_env({}) == s3.S3Settings()
    with pytest.raises(ValueError, match="MMRLAIF_S3_MAX_ATTEMPTS='many'"):
        s3.S3Settings.from_env({"MMRLAIF_S3_MAX_ATTEMPTS": "many"})


def test_clients_are_cached_per_settings_and_environment(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "one")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    settings = s3.S3Settings(endpoint_url="http://127.0.0.1:9")
    first = s3.client(settings)
    assert s3.client(settings) is first
    assert s3.client(settings, cached=False) is not first
    assert s3.client(s3.S3Settings(endpoint_url="http://127.0.0.1:10")) is not first
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "two")  # new credentials: a new client
    assert s3.client(settings) is not first
    assert first.meta.config.s3 == {"addressing_style": "path"}
    assert first.meta.config.retries == {"total_max_attempts": 5, "mode": "standard"}


def test_retry_gives_up_on_permanent_errors_at_once():
    calls = []

    def boom():
        calls.append(1)
        raise PermissionError("denied")

    with pytest.raises(PermissionError):
        s3_ops._retry(boom, "test", attempts=5, base_delay=0)
    assert len(calls) == 1


# --------------------------------------------------------------------------------------------
# Round trips against moto
# --------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_table_round_trip_on_s3(s3_env, tmp_path):
    image = Image.new("RGB", (8, 8), (10, 200, 30))
    rows = [{"prompt_id": f"p{i}", "image": io.image_to_cell(image), "n": i} for i in range(3)]
    uri = f"s3://{s3_env.bucket}/runs/r1/table.parquet"
    assert io.write_table(rows, uri) == uri
    back = io.read_rows(uri)
    assert [r["prompt_id"] for r in back] == ["p0", "p1", "p2"]
    assert io.cell_to_image(back[1]["image"], "p1").getpixel((3, 3)) == (10, 200, 30)
    assert io.read_table(uri, columns=["n"]).column_names == ["n"]
    # Only the final object is left: no temporary key beside it.
    assert s3.list_prefix(f"s3://{s3_env.bucket}/") == [uri]
    assert s3.exists(uri) and not s3.exists(uri + ".nope")
    assert s3.exists(f"s3://{s3_env.bucket}/runs/") and not s3.exists(f"s3://{s3_env.bucket}/x/")

    json_uri = f"s3://{s3_env.bucket}/runs/r1/stats.json"
    io.write_json({"b": 1, "a": [1, 2]}, json_uri)
    local = s3.download_file(json_uri, tmp_path / "stats.json")
    assert json.loads(local.read_text()) == {"a": [1, 2], "b": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]

    with pytest.raises(FileNotFoundError, match=f"s3://{s3_env.bucket}/runs/r1/missing"):
        io.read_rows(f"s3://{s3_env.bucket}/runs/r1/missing.parquet")


@pytest.mark.integration
def test_tree_round_trip_and_republish_removes_stale(s3_env, tmp_path):
    model = _model_dir(tmp_path)
    prefix = f"s3://{s3_env.bucket}/models/policy"
    assert s3.upload_tree(model, prefix + "/") == prefix
    listed = s3.list_prefix(f"s3://{s3_env.bucket}/")
    assert listed == sorted(f"{prefix}/{rel}" for rel in [*_files(model), "_MANIFEST.json"])
    manifest = s3.read_manifest(prefix)
    assert {e["path"]: e["sha256"] for e in manifest["files"]} == _files(model)

    out = tmp_path / "out" / "policy"
    assert s3.download_tree(prefix, out) == out
    assert _files(out) == _files(model)
    assert sorted(p.name for p in out.parent.iterdir()) == ["policy"]  # no temporary folder

    # A new version without some files: the old ones disappear from the prefix.
    (model / "sub" / "deep" / "x.bin").unlink()
    (model / "model.safetensors").write_bytes(b"v2")
    (model / "added.txt").write_text("new")
    s3.upload_tree(model, prefix)
    listed = s3.list_prefix(f"s3://{s3_env.bucket}/")
    assert listed == sorted(f"{prefix}/{rel}" for rel in [*_files(model), "_MANIFEST.json"])
    s3.download_tree(prefix, out)  # replaces the earlier download
    assert _files(out) == _files(model)


@pytest.mark.integration
def test_download_tree_refuses_prefix_without_manifest(s3_env, tmp_path):
    (tmp_path / "f.txt").write_text("x")
    prefix = f"s3://{s3_env.bucket}/models/half"
    s3.upload_file(tmp_path / "f.txt", prefix + "/f.txt")
    with pytest.raises(s3.IncompleteTreeError, match=f"{prefix}/ has no _MANIFEST.json"):
        s3.download_tree(prefix, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.integration
def test_download_tree_detects_tampering(s3_env, tmp_path):
    model = _model_dir(tmp_path, big=1000)
    prefix = f"s3://{s3_env.bucket}/models/m"
    s3.upload_tree(model, prefix)
    (tmp_path / "evil").write_bytes(os.urandom(1000))  # same size, other bytes
    s3.upload_file(tmp_path / "evil", prefix + "/model.safetensors")
    with pytest.raises(s3.IntegrityError, match="model.safetensors: sha256 differs"):
        s3.download_tree(prefix, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil", "model"]


@pytest.mark.integration
def test_large_file_goes_multipart(s3_env, tmp_path):
    data = os.urandom(12 * MIB)
    (tmp_path / "big.bin").write_bytes(data)
    uri = f"s3://{s3_env.bucket}/models/big.bin"
    with servers.fault_proxy(s3_env.endpoint) as proxy:
        settings = _settings(proxy.endpoint, multipart_threshold_mb=5, multipart_chunk_mb=5)
        s3.upload_file(tmp_path / "big.bin", uri, settings)
        assert proxy.count("UploadPart") == 3  # 5 + 5 + 2 MiB
        assert proxy.count("PutObject") == 0
    etag = s3.client().head_object(Bucket=s3_env.bucket, Key="models/big.bin")["ETag"]
    assert etag.strip('"').endswith("-3")
    s3.download_file(uri, tmp_path / "back.bin", settings=_settings(s3_env.endpoint))
    assert (tmp_path / "back.bin").read_bytes() == data
    assert s3.list_prefix(f"s3://{s3_env.bucket}/") == [uri]


# --------------------------------------------------------------------------------------------
# Transient errors and interrupted uploads, through the fault proxy
# --------------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["slowdown", "reset"])
def test_whole_operation_retry_survives_transient_errors(s3_env, tmp_path, mode, caplog):
    (tmp_path / "f.txt").write_text("payload")
    uri = f"s3://{s3_env.bucket}/a/f.txt"
    with servers.fault_proxy(s3_env.endpoint) as proxy:
        proxy.fail(times=2, mode=mode)  # the first two requests, whatever they are
        s3.upload_file(tmp_path / "f.txt", uri, _settings(proxy.endpoint, **NO_BOTO_RETRY))
        assert sum(r.failed for r in proxy.requests) == 2
    assert "retrying" in caplog.text and "testing" not in caplog.text  # no credentials logged
    s3.download_file(uri, tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text() == "payload"
    assert s3.list_prefix(f"s3://{s3_env.bucket}/") == [uri]


@pytest.mark.integration
def test_botocore_retries_slowdown(s3_env, tmp_path):
    (tmp_path / "f.txt").write_text("payload")
    uri = f"s3://{s3_env.bucket}/f.txt"
    with servers.fault_proxy(s3_env.endpoint) as proxy:
        proxy.fail("PutObject", times=1)
        s3.upload_file(tmp_path / "f.txt", uri, _settings(proxy.endpoint, retry_attempts=1))
        assert proxy.count("PutObject", failed=True) == 1
        assert proxy.count("PutObject", failed=False) == 1
    assert s3.exists(uri)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("operation", "size_mib"),
    [("UploadPart", 12), ("UploadPartCopy", 12), ("PutObject", 1), ("CopyObject", 1)],
)
def test_interrupted_upload_leaves_nothing(s3_env, moto_server, tmp_path, operation, size_mib):
    """A permanent failure while uploading or publishing: no object, temp key or upload left."""
    (tmp_path / "f.bin").write_bytes(os.urandom(size_mib * MIB))
    uri = f"s3://{s3_env.bucket}/models/f.bin"
    with servers.fault_proxy(s3_env.endpoint) as proxy:
        # Fail the second part (or the single request) of that kind, every time it comes.
        proxy.fail(
            lambda r: r.operation == operation and r.query.get("partNumber", ["2"]) == ["2"],
            times=None,
            mode="500",
        )
        settings = _settings(
            proxy.endpoint, multipart_threshold_mb=5, multipart_chunk_mb=5, **NO_BOTO_RETRY
        )
        with pytest.raises(Exception, match="InternalError|500"):
            s3.upload_file(tmp_path / "f.bin", uri, settings)
        assert proxy.count(operation, failed=True) == NO_BOTO_RETRY["retry_attempts"]
    assert s3.list_prefix(f"s3://{s3_env.bucket}/") == []
    assert not s3.exists(uri)
    assert _multipart_uploads(moto_server, s3_env.bucket) == []


@pytest.mark.integration
def test_interrupted_tree_upload_publishes_nothing(s3_env, moto_server, tmp_path):
    model = _model_dir(tmp_path, big=1000)
    prefix = f"s3://{s3_env.bucket}/models/policy"
    with servers.fault_proxy(s3_env.endpoint) as proxy:
        proxy.fail(lambda r: r.path.endswith("/x.bin"), times=None, mode="500")
        with pytest.raises(Exception, match="InternalError|500"):
            s3.upload_tree(model, prefix, _settings(proxy.endpoint, **NO_BOTO_RETRY))
    assert s3.list_prefix(f"s3://{s3_env.bucket}/") == []  # staging cleaned, nothing published
    assert _multipart_uploads(moto_server, s3_env.bucket) == []


@pytest.mark.integration
def test_failed_republish_leaves_no_manifest(s3_env, tmp_path):
    model = _model_dir(tmp_path, big=1000)
    prefix = f"s3://{s3_env.bucket}/models/policy"
    s3.upload_tree(model, prefix)
    (model / "config.json").write_text("{}")
    with servers.fault_proxy(s3_env.endpoint) as proxy:
        # The copy into place fails after the old manifest and stale objects are gone.
        proxy.fail(
            lambda r: r.operation == "CopyObject" and r.path.endswith("/models/policy/config.json"),
            times=None,
            mode="500",
        )
        with pytest.raises(Exception, match="InternalError|500"):
            s3.upload_tree(model, prefix, _settings(proxy.endpoint, **NO_BOTO_RETRY))
    listed = s3.list_prefix(f"s3://{s3_env.bucket}/")
    assert f"{prefix}/_MANIFEST.json" not in listed
    assert all(u.startswith(prefix + "/") for u in listed)  # the staging prefix is gone
    with pytest.raises(s3.IncompleteTreeError, match=prefix):
        s3.download_tree(prefix, tmp_path / "out")


# --------------------------------------------------------------------------------------------
# MLflow on the loopback S3
# --------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_mlflow_server_stores_artifacts_in_loopback_s3(mlflow_server, moto_server, tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.uri)
    experiment = client.create_experiment(f"io-test-{tmp_path.name}")
    run = client.create_run(experiment)
    (tmp_path / "note.txt").write_text("artifact body")
    client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"), artifact_path="docs")
    client.set_terminated(run.info.run_id)

    back = client.download_artifacts(run.info.run_id, "docs/note.txt", str(tmp_path / "dl"))
    assert Path(back).read_text() == "artifact body"
    keys = [
        o["Key"]
        for o in moto_server.boto3_client()
        .list_objects_v2(Bucket=mlflow_server.bucket)
        .get("Contents", [])
    ]
    assert any(k.endswith(f"{run.info.run_id}/artifacts/docs/note.txt") for k in keys), keys
