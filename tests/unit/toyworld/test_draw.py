import numpy as np
import pytest

from mmrlaif.toyworld.draw import place_objects, render
from mmrlaif.toyworld.vocab import PAIRS, object_colour


def test_free_placement_never_overlaps_and_stays_inside():
    rng = np.random.default_rng(0)
    for _ in range(200):
        placed = place_objects(["cup", "saucer", "dog", "tree"], rng, 64, (12, 18), 10)
        for i, a in enumerate(placed):
            assert a.x > 0 and a.x + a.size < 64 and a.y > 0 and a.y + a.size < 64
            for b in placed[i + 1 :]:
                assert (
                    a.x + a.size < b.x
                    or b.x + b.size < a.x
                    or a.y + a.size < b.y
                    or b.y + b.size < a.y
                )


def test_grid_placement_keeps_each_object_in_its_own_cell():
    rng = np.random.default_rng(1)
    for _ in range(100):
        placed = place_objects(["cup", "fork", "knife", "car"], rng, 64, (10, 14), 0, grid_cell=16)
        cells = {(p.x // 16, p.y // 16) for p in placed}
        assert len(cells) == 4
        for p in placed:
            assert p.x // 16 == (p.x + p.size - 1) // 16 and p.y // 16 == (p.y + p.size - 1) // 16
    with pytest.raises(RuntimeError, match="do not fit"):
        place_objects(["cup"] * 5, rng, 32, (10, 14), 0, grid_cell=16)


def test_palettes():
    for a, b in PAIRS:
        assert object_colour(a, "distinct") != object_colour(b, "distinct")
        assert object_colour(a, "shared") == object_colour(b, "shared")
    with pytest.raises(ValueError, match="unknown palette 'neon'"):
        object_colour("cup", "neon")


def test_render_draws_object_colour_over_background():
    rng = np.random.default_rng(2)
    placed = place_objects(["cup"], rng, 64, (16, 16), 0)
    image = np.asarray(render(placed, 64, rng, pixel_noise=0.0))
    p = placed[0]
    centre = image[p.y + p.size // 2, p.x + p.size // 2]
    assert tuple(int(v) for v in centre) == object_colour("cup")
    assert tuple(int(v) for v in image[0, 0]) == (232, 230, 222)
