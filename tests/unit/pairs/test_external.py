import pytest
from PIL import Image

from mmrlaif import io
from mmrlaif.models.chat import assistant_message, user_message
from mmrlaif.pairs.external import import_rlaifv_rows


def cell(colour):
    return io.image_to_cell(Image.new("RGB", (8, 8), colour))


def test_import_converts_and_counts_skips():
    rows = [
        {
            "idx": 7,
            "image": cell((1, 2, 3)),
            "question": "What is it?",
            "chosen": "A cup.",
            "rejected": "A cup and a saucer.",
        },
        {"idx": 8, "image": cell((1, 2, 3)), "question": "Q", "chosen": "", "rejected": "x"},
        {"idx": 9, "image": cell((1, 2, 3)), "question": "Q", "chosen": "same", "rejected": "same"},
    ]
    out, skips = import_rlaifv_rows(rows)
    assert skips == {"empty_answer": 1, "identical": 1}
    (r,) = out
    assert r["source"] == "external" and r["prompt_id"].startswith("ext-")
    assert r["prompt"] == user_message("What is it?")
    assert r["chosen"] == assistant_message("A cup.")
    assert r["rejected"] == assistant_message("A cup and a saucer.")
    assert io.cell_to_image(r["images"][0], "x").getpixel((0, 0)) == (1, 2, 3)


def test_bad_rows_are_named():
    with pytest.raises(KeyError, match="row 3: missing column 'rejected'"):
        import_rlaifv_rows([{"idx": 3, "image": cell((0, 0, 0)), "question": "q", "chosen": "a"}])
    bad = {
        "idx": 4,
        "image": {"bytes": b"junk", "path": None},
        "question": "q",
        "chosen": "a",
        "rejected": "b",
    }
    with pytest.raises(io.ImageError, match="external row 4"):
        import_rlaifv_rows([bad])
