"""Alignment prompts imported from a Parquet dataset, locally and from the loopback S3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mmrlaif.config import Config, DataConfig
from mmrlaif.io import image_to_cell, read_rows, write_table
from mmrlaif.io.prompts import PromptsError, import_prompts, prompt_id_of


def _cell(colour: str) -> dict:
    return image_to_cell(Image.new("RGB", (8, 8), colour))


def _dataset(path: str | Path) -> None:
    write_table(
        [
            {"img": _cell("red"), "q": "Describe the image.", "answer": "A red square."},
            {"img": {"bytes": b"not a png", "path": None}, "q": "What is it?", "answer": ""},
            {"img": _cell("blue"), "q": "  ", "answer": ""},
            {"img": _cell("red"), "q": "Describe the image.", "answer": "again"},
            {"img": _cell("green"), "q": "What colour is it?", "answer": "Green."},
        ],
        path,
        image_columns=("img",),
    )


def test_import_keeps_good_rows_and_counts_the_rest(tmp_path: Path) -> None:
    src = tmp_path / "prompts.parquet"
    _dataset(src)
    cfg = DataConfig(align_prompts=str(src), image_column="img", question_column="q")
    stats = import_prompts(cfg, tmp_path / "out.parquet")
    assert (stats.rows, stats.kept) == (5, 2)
    assert stats.skipped == {
        "image undecodable": 1,
        "empty question": 1,
        "duplicate of an earlier row": 1,
    }
    rows = read_rows(tmp_path / "out.parquet")
    assert [r["question"] for r in rows] == ["Describe the image.", "What colour is it?"]
    assert rows[0]["answer"] == "A red square."
    assert rows[0]["prompt_id"] == prompt_id_of(_cell("red")["bytes"], "Describe the image.")
    assert len({r["prompt_id"] for r in rows}) == 2


def _png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    import io
    import struct
    import zlib

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_oversized_and_wrong_layout_images_are_counted_skips(tmp_path: Path) -> None:
    src = tmp_path / "p.parquet"
    bomb = {"bytes": _png_claiming(14_000, 14_000), "path": None}
    write_table(
        [
            {"image": _cell("red"), "question": "Describe."},
            {"image": bomb, "question": "A bomb?"},  # PIL's own limit (2 x 89M pixels)
            {"image": image_to_cell(Image.new("RGB", (40, 40))), "question": "Large?"},
        ],
        src,
    )
    cfg = DataConfig(align_prompts=str(src), max_image_pixels=10**12)
    stats = import_prompts(cfg, tmp_path / "o.parquet")
    assert (stats.kept, stats.skipped) == (2, {"image too large": 1})
    # the configured limit is read from the header, before decoding: 40 x 40 > 1000
    cfg = DataConfig(align_prompts=str(src), max_image_pixels=1000)
    stats = import_prompts(cfg, tmp_path / "o.parquet")
    assert (stats.kept, stats.skipped) == (1, {"image too large": 2})
    # raw image bytes instead of the HF Image layout {bytes, path}: every row a counted skip,
    # and the error says why nothing is left
    write_table([{"image": _cell("red")["bytes"], "question": "Raw?"}] * 2, src, image_columns=())
    with pytest.raises(
        PromptsError, match=r"no usable prompt in 2 row\(s\) \(\{'image wrong layout': 2\}"
    ):
        import_prompts(DataConfig(align_prompts=str(src)), tmp_path / "o.parquet")
    with pytest.raises(Exception, match="max_image_pixels must be >= 1"):
        DataConfig(max_image_pixels=0)


def test_missing_column_and_repeated_id_are_errors(tmp_path: Path) -> None:
    src = tmp_path / "p.parquet"
    _dataset(src)
    with pytest.raises(PromptsError, match=r"p.parquet: missing column\(s\) image"):
        import_prompts(DataConfig(align_prompts=str(src)), tmp_path / "o.parquet")
    write_table(
        [{"image": _cell("red"), "question": "a?", "id": "x"}] * 2,
        src,
    )
    with pytest.raises(
        PromptsError, match=r"p.parquet row 1: prompt id 'x' repeats .*p.parquet row 0"
    ):
        import_prompts(DataConfig(align_prompts=str(src), id_column="id"), tmp_path / "o.parquet")
    assert not (tmp_path / "o.parquet").exists()


def test_limit(tmp_path: Path) -> None:
    src = tmp_path / "p.parquet"
    _dataset(src)
    cfg = DataConfig(align_prompts=str(src), image_column="img", question_column="q", limit=1)
    assert import_prompts(cfg, tmp_path / "o.parquet").kept == 1


@pytest.mark.integration
def test_world_step_imports_prompts_from_s3(s3_env, tmp_path: Path) -> None:
    """The world's align split comes from a Parquet object on the loopback S3 server."""
    from mmrlaif.artifacts import IMPORT_REPORT
    from mmrlaif.config import WorldConfig
    from mmrlaif.steps.world import world_step

    uri = f"s3://{s3_env.bucket}/data/prompts.parquet"
    _dataset(uri)
    cfg = Config(
        world=WorldConfig(n_train=4, n_align=2, n_eval=2, n_val=2),
        data=DataConfig(align_prompts=uri, image_column="img", question_column="q"),
    )
    paths = world_step(cfg, tmp_path / "world")
    rows = read_rows(paths.prompts("align"))
    assert [r["question"] for r in rows] == ["Describe the image.", "What colour is it?"]
    report = json.loads((tmp_path / "world" / IMPORT_REPORT).read_text())
    assert report["source"] == uri and report["kept"] == 2
    assert len(read_rows(paths.prompts("eval"))) == 2  # the toy eval split is kept


@pytest.mark.integration
def test_storage_endpoint_from_the_config_reaches_the_prompt_import(
    s3_env, tmp_path: Path, monkeypatch
) -> None:
    """No MMRLAIF_S3_* / AWS_ENDPOINT_URL* variables: the endpoint comes from storage.*."""
    from mmrlaif.artifacts import IMPORT_REPORT
    from mmrlaif.config import config_to_yaml, parse_config
    from mmrlaif.io import s3, s3_client
    from mmrlaif.steps.world import world_step

    uri = f"s3://{s3_env.bucket}/data/prompts.parquet"
    _dataset(uri)
    for name in ("MMRLAIF_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(
        s3_client, "_configured", []
    )  # this process's settings, restored afterwards
    s3.clear_client_cache()
    data = {
        "world": {"n_train": 4, "n_align": 2, "n_eval": 2, "n_val": 2},
        "data": {"align_prompts": uri, "image_column": "img", "question_column": "q"},
        "storage": {"endpoint_url": s3_env.endpoint},
    }
    from mmrlaif.config import Config, from_dict

    cfg = parse_config(config_to_yaml(from_dict(Config, data)))  # as a pipeline task gets it
    assert s3.current_settings().endpoint_url == s3_env.endpoint
    world_step(cfg, tmp_path / "world")
    assert json.loads((tmp_path / "world" / IMPORT_REPORT).read_text())["kept"] == 2
