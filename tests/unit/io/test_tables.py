import pyarrow as pa
import pytest
from datasets import load_dataset
from PIL import Image

from mmrlaif import io


def test_table_round_trip_and_hf_image_layout(tmp_path):
    image = Image.new("RGB", (8, 8), (10, 200, 30))
    rows = [{"prompt_id": "p0", "image": io.image_to_cell(image), "question": "q"}]
    path = io.write_table(rows, tmp_path / "t.parquet")
    back = io.read_rows(path)
    assert back[0]["prompt_id"] == "p0"
    assert io.cell_to_image(back[0]["image"], "p0").getpixel((3, 3)) == (10, 200, 30)
    # datasets decodes the column as an image thanks to the schema metadata.
    ds = load_dataset("parquet", data_files=str(path), split="train")
    assert isinstance(ds[0]["image"], Image.Image)
    assert ds[0]["image"].getpixel((0, 0)) == (10, 200, 30)


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "t.parquet"
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_is_atomic_replacement(tmp_path):
    target = tmp_path / "t.parquet"
    io.write_table(pa.table({"a": [1]}), target)
    io.write_table(pa.table({"a": [2]}), target)
    assert io.read_rows(target) == [{"a": 2}]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (None, "p7: image is missing"),
        ({"bytes": None, "path": None}, "p7: image cell has neither bytes nor path"),
        ({"bytes": b"not a png", "path": None}, "p7: image cannot be decoded"),
        ({"bytes": None, "path": "/nonexistent/x.png"}, "p7: image cannot be decoded"),
    ],
)
def test_bad_image_cells_name_the_item(cell, message):
    with pytest.raises(io.ImageError, match=message):
        io.cell_to_image(cell, "p7")


def test_missing_table_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        io.read_table(tmp_path / "nope.parquet")
