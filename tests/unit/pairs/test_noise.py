import math

import numpy as np
import pytest
from PIL import Image

from mmrlaif.pairs.noise import (
    add_diffusion_noise,
    noise_coefficients,
    sigmoid_betas,
    to_uint8,
)


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
    a = np.asarray(add_diffusion_noise(image, seed=3, clamp=True), dtype=np.float64) / 255
    b = np.asarray(add_diffusion_noise(image, seed=3, clamp=True), dtype=np.float64) / 255
    c = np.asarray(add_diffusion_noise(image, seed=4, clamp=True), dtype=np.float64) / 255
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    signal, noise = noise_coefficients(500)
    # each pixel is clip(signal * x0 + noise * eps) with eps drawn from the seed, rounded to 8 bits
    eps = np.random.default_rng(3).standard_normal((64, 64, 3))
    expected = np.round(np.clip(signal * (128 / 255) + noise * eps, 0, 1) * 255) / 255
    assert np.array_equal(a, expected)
    # and the noise is visible: about half a unit of spread before clipping
    assert 0.3 < a.std() < 0.5


def test_the_uint8_conversion_wraps_as_the_references_to_pil_image():
    # ToPILImage: x.mul(255).byte(): truncate toward zero, keep the low 8 bits
    pixels = np.array([-0.3, -1.5, 300.0, 127.5, 255.9, 256.2, -200.0]) / 255
    assert to_uint8(pixels).tolist() == [0, 255, 44, 127, 255, 0, 56]
    # clamped: clip to [0, 1], then round
    assert to_uint8(pixels, clamp=True).tolist() == [0, 0, 255, 128, 255, 255, 0]


def test_unclamped_noise_wraps_about_a_third_of_a_grey_image():
    image = Image.new("RGB", (64, 64), (128, 128, 128))
    wrapped = np.asarray(add_diffusion_noise(image, seed=3), dtype=np.int64)
    signal, noise = noise_coefficients(500)
    eps = np.random.default_rng(3).standard_normal((64, 64, 3))
    x = signal * (128 / 255) + noise * eps
    assert np.array_equal(wrapped, np.mod(np.trunc(x * 255).astype(np.int64), 256))
    # a pixel wraps when x < -1/255 or x >= 256/255, i.e. eps beyond these bounds
    low = (-1 / 255 - signal * 128 / 255) / noise
    high = (256 / 255 - signal * 128 / 255) / noise
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    share = phi(low) + 1 - phi(high)
    assert share == pytest.approx(0.3227, abs=1e-4)
    seen = np.mean((x < -1 / 255) | (x >= 256 / 255))
    assert seen == pytest.approx(share, abs=0.015)  # 12288 draws: sd 0.004
    # wrapped pixels land far from their clamped value
    clamped = np.asarray(add_diffusion_noise(image, seed=3, clamp=True), dtype=np.int64)
    assert np.mean(np.abs(wrapped - clamped) > 1) == pytest.approx(share, abs=0.015)
