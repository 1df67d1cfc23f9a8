"""Smooth, band-limited, non-repeating random fields in continuous world coordinates.

A :class:`BandNoise` is a sum of many plane waves with random orientations (uniform on the
sphere), random phases and wavelengths drawn log-uniformly over a band, with amplitudes
``(wavelength / longest) ** slope`` (more power at coarse scales, as in real tissue). With 48 or
more incommensurate components the field is close to a Gaussian random field: no grid, no
periodic repetition and no checkerboard interference, unlike a sum of a dozen waves of similar
wavelength. It is evaluated at world points, so it is identical in every frame and moves with the
anatomy under breath-hold offsets. Cost: one (points x components) cosine.
"""

from __future__ import annotations

import numpy as np


class BandNoise:
    """Unit-RMS smooth random field (random Fourier features with a power-law amplitude spectrum).

    Args:
        rng: random generator.
        components: number of plane waves.
        wavelength: (shortest, longest) wavelength in mm; drawn log-uniformly.
        slope: amplitude exponent in wavelength (0 white over the band, 1 strongly coarse).
        planar: if True, wave vectors have no z component (a field of x, y only).
    """

    def __init__(self, rng: np.random.Generator, components: int = 64,
                 wavelength: tuple[float, float] = (3.0, 50.0), slope: float = 0.5,
                 planar: bool = False) -> None:
        directions = rng.normal(size=(components, 3))
        if planar:
            directions[:, 2] = 0.0
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        lengths = np.exp(rng.uniform(np.log(wavelength[0]), np.log(wavelength[1]), components))
        self.wavevectors = (directions * (2 * np.pi / lengths)[:, None]).T.astype(np.float32)
        self.phases = rng.uniform(0, 2 * np.pi, components).astype(np.float32)
        weights = (lengths / wavelength[1]) ** slope
        self.amplitudes = (weights * np.sqrt(2.0 / np.sum(weights**2))).astype(np.float32)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Field values (float32; phases of a few hundred radians keep ~1e-4 precision) at world points (..., 3)."""
        arg = points.astype(np.float32) @ self.wavevectors
        arg += self.phases
        np.cos(arg, out=arg)
        return arg @ self.amplitudes


class AngularProfile:
    """Smooth random periodic function of an angle: ``1 + sum_k a_k cos(k theta + p_k)``.

    Args:
        rng: random generator.
        amplitude: total relative amplitude (the a_k fall off as 1/k and sum to this).
        orders: harmonic orders.
    """

    def __init__(self, rng: np.random.Generator, amplitude: float, orders: tuple[int, ...] = (1, 2, 3, 4, 5)) -> None:
        self.orders = np.array(orders, dtype=float)
        raw = rng.uniform(0.5, 1.0, len(orders)) / self.orders
        self.amplitudes = amplitude * raw / raw.sum()
        self.phases = rng.uniform(0, 2 * np.pi, len(orders))

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        out = np.ones_like(theta)
        for order, amp, phase in zip(self.orders, self.amplitudes, self.phases, strict=True):
            out += amp * np.cos(order * theta + phase)
        return out
