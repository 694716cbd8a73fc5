"""Shared benchmark plumbing: data roots (local and on a loopback moto S3), record readers."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from mmrlaif.config.strict import ConfigError
from mmrlaif.evaluation.hallucination.common import (
    BenchmarkDataError,
    BenchmarkFormatError,
    DataRoot,
    Fields,
    Query,
    check_images,
    load_json,
    load_records,
)
from mmrlaif.io import ImageError


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (2, 2), (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()


def _tree(root: Path) -> None:
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.png").write_bytes(_png())
    (root / "images" / "deep").mkdir()
    (root / "images" / "deep" / "b.png").write_bytes(_png())
    (root / "lines.json").write_text('{"a": 1}\n\n{"a": 2}\n')
    (root / "array.json").write_text('  [{"a": 1}, {"a": 2}]')


def test_records_json_lines_and_arrays(tmp_path: Path) -> None:
    _tree(tmp_path)
    root = DataRoot(tmp_path, "bench")
    # blank line skipped; labels are 1-based lines for JSON lines, 0-based records for arrays
    assert load_records(root, "lines.json") == [("line 1", {"a": 1}), ("line 3", {"a": 2})]
    assert load_records(root, "array.json") == [("record 0", {"a": 1}), ("record 1", {"a": 2})]


def test_broken_json_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n')
    (tmp_path / "bad.json").write_text('{\n  "a": [1,,2]\n}')
    root = DataRoot(tmp_path, "bench")
    with pytest.raises(BenchmarkFormatError, match=r"bad\.jsonl: line 2: not valid JSON") as err:
        load_records(root, "bad.jsonl")
    assert err.value.file == str(tmp_path / "bad.jsonl") and err.value.record == "line 2"
    with pytest.raises(BenchmarkFormatError, match=r"bad\.json: line 2 column 11: not valid JSON"):
        load_json(root, "bad.json")


def test_fields_name_file_record_and_problem() -> None:
    fields = Fields("f.json", "line 4", {"id": 7, "n": True, "s": " ", "l": ["a", ""]}, "id")
    assert fields.label == "line 4 (id 7)"
    cases = [
        (lambda: fields.string("missing"), "missing field 'missing'"),
        (lambda: fields.string("s"), "field 's' is empty"),
        (lambda: fields.string("id"), "field 'id' must be a string, got 7"),
        (lambda: fields.integer("n"), "field 'n' must be an integer, got True"),
        (lambda: fields.strings("l"), "field 'l' must be a list of non-empty strings"),
        (
            lambda: fields.choice("id", ("yes", "no")),
            r"field 'id' must be one of \['yes', 'no'\], got 7",
        ),
    ]
    for call, problem in cases:
        with pytest.raises(BenchmarkFormatError, match=r"^f\.json: line 4 \(id 7\): " + problem):
            call()
    with pytest.raises(BenchmarkFormatError, match=r"f\.json: line 1: expected a JSON object"):
        Fields("f.json", "line 1", [1, 2])


def test_local_root(tmp_path: Path) -> None:
    _tree(tmp_path)
    root = DataRoot(tmp_path, "bench")
    root.check()
    assert root.exists("images/a.png") and not root.exists("images/zzz.png")
    assert root.list_files("images") == ["images/a.png"]  # not recursive
    assert root.list_files() == ["array.json", "lines.json"]
    assert root.list_files("nowhere") == []
    with pytest.raises(BenchmarkDataError, match="benchmark 'bench': file not found: .*x.json"):
        root.read_text("x.json")
    for escape in ("../secret.txt", "/etc/hostname", "images/../../x"):
        with pytest.raises(BenchmarkDataError, match="path leaves the data root"):
            root.exists(escape)
    missing = DataRoot(tmp_path / "nope", "pope")
    with pytest.raises(ConfigError, match=r"benchmark 'pope': data folder not found: .*nope"):
        missing.check()


def test_s3_root(s3_env, moto_server) -> None:
    client = moto_server.boto3_client()
    for key, body in {
        "bench/lines.json": b'{"a": 1}\n',
        "bench/images/a.png": _png(),
        "bench/images/deep/b.png": _png(),
        "bench-other/x.json": b"[]",
    }.items():
        client.put_object(Bucket=s3_env.bucket, Key=key, Body=body)
    root = DataRoot(f"s3://{s3_env.bucket}/bench/", "bench")
    root.check()
    assert root.location == f"s3://{s3_env.bucket}/bench"
    assert root.list_files() == ["lines.json"]
    assert root.list_files("images") == ["images/a.png"]
    assert root.exists("images/deep/b.png") and not root.exists("x.json")
    assert load_records(root, "lines.json") == [("line 1", {"a": 1})]
    image = Query("bench/1", "p", image_path="images/a.png").load_image(root)
    assert image.size == (2, 2)
    with pytest.raises(BenchmarkDataError, match=rf"file not found: s3://{s3_env.bucket}/bench/y"):
        root.read_bytes("y")
    with pytest.raises(BenchmarkDataError, match="no objects under prefix"):
        DataRoot(f"s3://{s3_env.bucket}/empty", "bench").check()


def test_query_images(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "images" / "broken.png").write_bytes(b"not an image")
    root = DataRoot(tmp_path, "bench")
    assert Query("q", "p", image_bytes=_png()).load_image(root).mode == "RGB"
    with pytest.raises(ImageError, match=r"bench/7: cannot decode .*broken\.png"):
        Query("bench/7", "p", image_path="images/broken.png").load_image(root)
    with pytest.raises(ImageError, match=r"bench/8: image not found: .*gone\.png"):
        Query("bench/8", "p", image_path="images/gone.png").load_image(root)
    with pytest.raises(BenchmarkDataError, match=r"image of bench/9 not found: .*gone\.png"):
        check_images(
            root, [Query("bench/1", "p", "images/a.png"), Query("bench/9", "p", "images/gone.png")]
        )
