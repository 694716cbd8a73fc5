import math

import numpy as np
import pytest
from PIL import Image

from mmrlaif.pairs.noise import add_diffusion_noise, noise_coefficients, sigmoid_betas


def test_schedule_end_points_by_hand():
    betas = sigmoid_betas()
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    # beta_0 = sigmoid(-6) * (5e-3 - 1e-5) + 1e-5, beta_999 = sigmoid(6) * (...) + 1e-5
    assert betas[0] == pytest.approx(sig(-6) * (5e-3 - 1e-5) + 1e-5, rel=1e-12)
    assert betas[-1] == pytest.approx(sig(6) * (5e-3 - 1e-5) + 1e-5, rel=1e-12)
    assert len(betas) == 1000 and np.all(np.diff(betas) > 0)


def test_coefficients_at_step_500_match_povid():
    signal, noise = noise_coefficients(500)
    assert signal == pytest.approx(0.863, abs=5e-4)
    assert noise == pytest.approx(0.505, abs=5e-4)
    assert signal**2 + noise**2 == pytest.approx(1.0)
    # step 0: a single beta, alpha_bar = 1 - beta_0
    s0, _ = noise_coefficients(0)
    assert s0**2 == pytest.approx(1 - sigmoid_betas()[0])
    with pytest.raises(ValueError, match="step 1000 outside"):
        noise_coefficients(1000)


def test_noise_is_seeded_and_follows_the_formula():
    image = Image.new("RGB", (64, 64), (128, 128, 128))
    a = np.asarray(add_diffusion_noise(image, seed=3), dtype=np.float64) / 255
    b = np.asarray(add_diffusion_noise(image, seed=3), dtype=np.float64) / 255
    c = np.asarray(add_diffusion_noise(image, seed=4), dtype=np.float64) / 255
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    signal, noise = noise_coefficients(500)
    # each pixel is clip(signal * x0 + noise * eps) with eps drawn from the seed, rounded to 8 bits
    eps = np.random.default_rng(3).standard_normal((64, 64, 3))
    expected = np.round(np.clip(signal * (128 / 255) + noise * eps, 0, 1) * 255) / 255
    assert np.array_equal(a, expected)
    # and the noise is visible: about half a unit of spread before clipping
    assert 0.3 < a.std() < 0.5
