"""POVID image distortion: forward-diffusion noise on [0, 1] pixels.

The schedule of the POVID reference code: 1000 steps with
``betas = sigmoid(linspace(-6, 6, 1000)) * (5e-3 - 1e-5) + 1e-5``, and the noisy image at step
``t`` is ``sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * eps`` with
``alpha_bar_t = prod_{s <= t} (1 - beta_s)``; at t = 500 that is about 0.863 x0 + 0.505 eps.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

N_STEPS = 1000
DEFAULT_STEP = 500


def sigmoid_betas(n_steps: int = N_STEPS, start: float = 1e-5, end: float = 5e-3) -> np.ndarray:
    """The sigmoid beta schedule (float64)."""
    x = np.linspace(-6.0, 6.0, n_steps)
    return 1.0 / (1.0 + np.exp(-x)) * (end - start) + start


def noise_coefficients(step: int = DEFAULT_STEP, n_steps: int = N_STEPS) -> tuple[float, float]:
    """``(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t))`` at ``step`` (0-based, as the reference).

    Raises:
        ValueError: If ``step`` is outside ``[0, n_steps)``.
    """
    if not 0 <= step < n_steps:
        raise ValueError(f"diffusion step {step} outside [0, {n_steps})")
    alpha_bar = float(np.cumprod(1.0 - sigmoid_betas(n_steps))[step])
    return alpha_bar**0.5, (1.0 - alpha_bar) ** 0.5


def add_diffusion_noise(
    image: Image.Image, seed: int, step: int = DEFAULT_STEP, n_steps: int = N_STEPS
) -> Image.Image:
    """Noise an image as the forward diffusion process does at ``step``.

    Pixels are scaled to [0, 1], noised with Gaussian noise drawn from ``seed``, clipped back to
    [0, 1] and returned as an 8-bit RGB image.
    """
    signal, noise = noise_coefficients(step, n_steps)
    x0 = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    eps = np.random.default_rng(seed).standard_normal(x0.shape)
    noisy = np.clip(signal * x0 + noise * eps, 0.0, 1.0)
    return Image.fromarray(np.round(noisy * 255.0).astype(np.uint8))
