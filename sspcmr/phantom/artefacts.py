"""Acquisition artefacts of cine bSSFP: breath-hold misregistration, wrap-around, banding.

* **Breath-hold misregistration.** Every short-axis slice is acquired in its own breath-hold, and
  the end-expiration position differs between breath-holds, mostly along the body axis: each slice
  gets a rigid scene shift with a superior-inferior component ``N(0, sd)`` (clipped to +-2.5 sd
  and +-10 mm), an anterior-posterior component ``0.35 * SI + N(0, 0.3 sd)`` and a left-right
  component ``N(0, 0.3 sd)``. The per-subject ``sd`` is drawn from the vendor's range and
  multiplied by 1.8-2.5 for poor breath-holders. Image and labels are rendered from the same
  shifted points, so they move together (and the slice positions in the truths include the shift).
* **Wrap-around.** When the phase-encoding field of view (the second array axis) is smaller than
  the body and phase oversampling is off, tissue beyond the field of view folds in at the opposite
  edge. The scene is rendered on a grid extended by ``pad`` rows on both sides and the extension
  rows are added to the opposite edge, fading to zero over the folded width (receive-coil falloff).
  The fold is limited to rows that carry no heart label in any frame, both where the tissue comes
  from and where it lands, so the heart never wraps and folded tissue never covers a label.
* **Off-resonance banding.** A smooth B0 field whose bSSFP phase ``pi * (rho / R)^2 * (1 + 0.12 n)``
  grows away from the heart (``rho``: anisotropic distance from the LV axis segment, ``n`` a smooth
  field clipped to +-1) gives dark bands where the phase crosses odd multiples of pi. ``R`` is set
  so that the phase stays below ``pi - 3 w`` (no attenuation at all) within the heart's label
  radius: bands only cross the periphery (body wall, lungs, liver), never the labelled heart.
"""

from __future__ import annotations

import numpy as np

from .noise import BandNoise

#: Largest superior-inferior breath-hold offset (mm).
MAX_SI_OFFSET = 10.0


def sample_breath_hold(rng: np.random.Generator, sd_range: tuple[float, float], poor_probability: float,
                       count: int) -> tuple[np.ndarray, float]:
    """Per-slice world shifts (count, 3) in mm (x LR, y AP, z SI) and the subject's SI SD."""
    sd = float(rng.uniform(*sd_range))
    if rng.random() < poor_probability:
        sd *= float(rng.uniform(1.8, 2.5))
    limit = min(2.5 * sd, MAX_SI_OFFSET)
    si = np.clip(rng.normal(0.0, sd, count), -limit, limit)
    ap = 0.35 * si + rng.normal(0.0, 0.3 * sd, count)
    lr = rng.normal(0.0, 0.3 * sd, count)
    shifts = np.stack([lr, np.clip(ap, -limit, limit), si], axis=1)
    shifts[:, 0] = np.clip(shifts[:, 0], -limit, limit)
    return shifts, sd


class OffResonanceBands:
    """Multiplicative bSSFP banding attenuation at world points (1 = no band).

    Args:
        rng: random generator (field anisotropy and perturbation).
        apex: world position of the epicardial apex.
        axis: unit LV long axis (apex -> base).
        length: LV length in mm.
        protect: radius (mm) around the LV axis segment that holds every heart label.
        scale: band radius relative to the smallest safe one (>= 1).
        depth: attenuation at the band centre (0-1).
        width: band half-width in radians of off-resonance phase.
    """

    def __init__(self, rng: np.random.Generator, apex: np.ndarray, axis: np.ndarray, length: float,
                 protect: float, scale: float, depth: float, width: float) -> None:
        self.apex, self.axis = np.asarray(apex, float), np.asarray(axis, float)
        self.s_range = (-10.0, 1.3 * length + 10.0)
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        scales = rng.uniform(0.55, 1.0, 3)
        self.metric = q @ np.diag(scales**2) @ q.T  # rho <= Euclidean distance
        self.noise = BandNoise(rng, 24, (60.0, 200.0), slope=0.5)
        self.depth, self.width = float(depth), float(width)
        safe = protect * np.sqrt(1.12 / (1.0 - 3.0 * width / np.pi))
        self.radius = float(safe * max(scale, 1.0))

    def phase(self, points: np.ndarray) -> np.ndarray:
        """Off-resonance phase per TR (radians) at world points (..., 3)."""
        rel = points - self.apex
        s = np.clip(rel @ self.axis, *self.s_range)
        d = rel - s[..., None] * self.axis
        rho2 = np.einsum("...i,ij,...j->...", d, self.metric, d)
        n = np.clip(self.noise(points), -1.0, 1.0)
        return np.pi * rho2 / self.radius**2 * (1.0 + 0.12 * n)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        dist = np.abs(np.mod(self.phase(points), 2 * np.pi) - np.pi)
        band = np.exp(-0.5 * (dist / self.width) ** 2) * (dist < 3.0 * self.width)
        return 1.0 - self.depth * band


def fold_phase(signal: np.ndarray, labels: np.ndarray, pad: int) -> np.ndarray:
    """Fold ``pad`` extension rows on both sides of axis 1 back into the field of view.

    Args:
        signal: (nx, ny + 2 pad, frames) signal on the extended grid.
        labels: labels of the same grid (any frame non-zero marks a row as heart).
        pad: extension rows per side.

    Returns:
        (nx, ny, frames) signal with the wrapped tissue added.
    """
    ny = signal.shape[1] - 2 * pad
    core = signal[:, pad : pad + ny].copy()
    if pad == 0:
        return core
    heart_rows = labels.reshape(labels.shape[0], labels.shape[1], -1).any(axis=(0, 2))
    margin = 3
    for side in (0, 1):
        # Rows outside the edge, nearest first, and the core rows they land on, nearest the other edge first.
        if side == 0:
            source = np.arange(pad - 1, -1, -1)  # above the top edge
            target = np.arange(ny - 1, ny - 1 - pad, -1)
        else:
            source = np.arange(pad + ny, 2 * pad + ny)  # below the bottom edge
            target = np.arange(0, pad)
        blocked = heart_rows[source] | heart_rows[target + pad]
        usable = int(np.argmax(blocked)) if blocked.any() else pad
        usable = max(usable - margin, 0)
        if usable == 0:
            continue
        i = np.arange(usable)
        weight = np.cos(0.5 * np.pi * (i + 0.5) / usable) ** 2
        core[:, target[:usable]] += signal[:, source[:usable]] * weight[None, :, None]
    return core
