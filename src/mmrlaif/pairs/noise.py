"""POVID image distortion: forward-diffusion noise on [0, 1] pixels.

The schedule of the POVID reference code: 1000 steps with
``betas = sigmoid(linspace(-6, 6, 1000)) * (5e-3 - 1e-5) + 1e-5``, and the noisy image at step
``t`` is ``sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * eps`` with
``alpha_bar_t = prod_{s <= t} (1 - beta_s)``; at t = 500 that is about 0.863 x0 + 0.505 eps.

The reference turns the noisy tensor back into an image with torchvision's ``ToPILImage``,
i.e. ``x.mul(255).byte()``, *without clamping*: the float is truncated toward zero and only its
low 8 bits are kept, so a pixel pushed below 0 or above 1 wraps around (-0.3 / 255 becomes 0,
-1.5 / 255 becomes 255, 300 / 255 becomes 44); at t = 500 that is about a third of the pixels
of a natural image. :func:`add_diffusion_noise` does the same by default; ``clamp=True`` clips
to [0, 1] and rounds instead (a milder noise: no wrapped pixels).
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


def to_uint8(pixels: np.ndarray, clamp: bool = False) -> np.ndarray:
    """Pixels on a [0, 1] scale as 8-bit values.

    Args:
        pixels: Float pixels (any shape), possibly outside [0, 1].
        clamp: Clip to [0, 1] and round (``True``), or, as the reference's
            ``ToPILImage`` (``x.mul(255).byte()``), truncate ``255 x`` toward zero and keep its
            low 8 bits, so out-of-range values wrap (``False``).
    """
    if clamp:
        return np.round(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.mod(np.trunc(pixels * 255.0).astype(np.int64), 256).astype(np.uint8)


def add_diffusion_noise(
    image: Image.Image,
    seed: int,
    step: int = DEFAULT_STEP,
    n_steps: int = N_STEPS,
    clamp: bool = False,
) -> Image.Image:
    """Noise an image as the forward diffusion process does at ``step``.

    Pixels are scaled to [0, 1] and noised with Gaussian noise drawn from ``seed`` (its own
    stream: the result does not depend on any other draw or on the number of cores), then
    converted back to an 8-bit RGB image by :func:`to_uint8` (wrapping, as the reference, unless
    ``clamp``).
    """
    signal, noise = noise_coefficients(step, n_steps)
    x0 = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    eps = np.random.default_rng(seed).standard_normal(x0.shape)
    return Image.fromarray(to_uint8(signal * x0 + noise * eps, clamp))
