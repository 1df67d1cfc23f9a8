"""End-diastolic shape functions of the ventricles, each a function of a :class:`~.anatomy.HeartShape` alone:
the LV cross-section and wall thickness by angle, the ischaemic sector, and the RV crescent's cavity
thickness and free wall by level and angle. :class:`~.heart.HeartModel` tabulates or calls them and
adds the motion; they are kept apart so that the model's volume bookkeeping stays on its own."""

from __future__ import annotations

import numpy as np

from .anatomy import HeartShape
from .primitives import wrap

ZETA_RV_PEAK = 0.1  # the RV cross-section is largest just below the base plane
RV_WALL_OVERHANG = 0.12  # the free wall runs this fraction of the half span past each horn
FLATTENING_SHARPNESS = 30.0  # soft-min exponent joining the flat septum to the LV section


def lv_section(s: HeartShape, phi: np.ndarray) -> np.ndarray:
    """LV cross-section radius factor by angle before normalisation: an ellipse with Fourier wobble,
    cut flat at the septum where the RV is overloaded.

    Args:
        s: heart shape.
        phi: angles from the RV direction (radians), increasing over a period for the septal cut.
    """
    q = s.ellipticity
    a, b = 1.0 / np.sqrt(q), np.sqrt(q)
    angle = phi - s.ellipse_angle
    ellipse = 1.0 / np.sqrt((np.cos(angle) / a) ** 2 + (np.sin(angle) / b) ** 2)
    wobble = 1.0 + sum(amp * np.cos(order * phi + ph) for order, amp, ph in s.harmonics)
    radius = ellipse * wobble
    if s.septal_flattening > 0.0:
        # Septal flattening (RV pressure / volume overload): the section is cut by a chord
        # perpendicular to the RV direction, (1 - flattening) of the septal radius from the axis.
        septal = float(np.interp(0.0, phi, radius)) if phi.size > 1 else float(radius)
        chord = (1.0 - s.septal_flattening) * septal / np.clip(np.cos(phi), 1e-3, None)
        n = FLATTENING_SHARPNESS
        radius = (radius**-n + chord**-n) ** (-1.0 / n)
    return radius


def lv_wall(s: HeartShape, phi: np.ndarray) -> np.ndarray:
    """ED wall thickness (mm) by angle: thickest at the septum (phi = 0)."""
    return s.wall_thickness + s.septal_extra * np.clip(np.cos(phi), 0.0, None) ** 2


def infarct_weight(s: HeartShape, zeta: np.ndarray, phi: np.ndarray) -> np.ndarray | None:
    """Ischaemic sector weight (0-1, smooth edges) by level and angle; None without one."""
    if s.infarct is None:
        return None
    angle, half_width, start = s.infarct[:3]
    across = _smoothstep((half_width - np.abs(wrap(phi - angle))) / 0.25 + 0.5)
    along = _smoothstep((zeta - start) / 0.1 + 0.5)
    return across * along


def rv_fields(s: HeartShape, zeta: np.ndarray, phi: np.ndarray, fraction: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """RV cavity thickness ``h0`` and free-wall factor (0-1) by level and angle.

    Across the span the cavity is ``(1 - v^2)^p``: ``v`` runs from -1 to 1 between the two
    septal insertion points, with 0 (the thickest point) shifted by ``rv_skew``; ``p`` is
    ``rv_fullness`` times the horn's ``rv_taper`` factor, times 0.9 at the base (fuller,
    more triangular) rising to 1.4 at the RV's apical end. The span narrows from 1.25 to 0.85
    times ``rv_half_span`` towards the apex. Along the axis the section is largest at zeta 0.1,
    closing at the outflow top and tapering (``1 - x^1.3``) to ``rv_end`` (retracting by ``rv_retract`` at RV ES).
    Aneurysmal bulges multiply the cavity locally and grow by 60% at RV ES (dyskinesia). The
    free wall covers the span and runs on past each horn, thinning to 0, onto the LV epicardium.
    """
    zeta, phi = np.broadcast_arrays(np.asarray(zeta, dtype=float), np.asarray(phi, dtype=float))
    out_shape = zeta.shape
    zeta, phi = zeta.reshape(-1), phi.reshape(-1)
    h0 = np.zeros(zeta.shape)
    wall = np.zeros(zeta.shape)
    top, peak = s.rv_top, ZETA_RV_PEAK
    end = s.rv_end - s.rv_retract * fraction
    idx = np.flatnonzero((zeta >= top) & (zeta <= end))
    z = zeta[idx]
    rel = np.clip(z / end, 0.0, 1.0)
    u = wrap(phi[idx] - s.rv_centre_angle) / (s.rv_half_span * (1.25 - 0.4 * rel))
    k = s.rv_skew
    positive = u >= k
    v = np.where(positive, (u - k) / (1.0 - k), (u - k) / (1.0 + k))
    keep = np.abs(v) < 1.0 + RV_WALL_OVERHANG
    idx, z, rel, v, positive = idx[keep], z[keep], rel[keep], v[keep], positive[keep]
    wall[idx] = np.clip((1.0 + RV_WALL_OVERHANG - np.abs(v)) / (2.0 * RV_WALL_OVERHANG), 0.0, 1.0)
    cav = np.abs(v) < 1.0
    idx, z, rel, v, positive = idx[cav], z[cav], rel[cav], v[cav], positive[cav]
    below = np.clip((z - peak) / (end - peak), 0.0, 1.0)
    above = np.clip((peak - z) / (peak - top), 0.0, 1.0)
    along = np.where(z >= peak, 1.0 - below**1.3, (1.0 - above**4) ** 0.25)
    exponent = s.rv_fullness * np.where(positive, s.rv_taper[1], s.rv_taper[0]) * (0.9 + 0.5 * rel)
    window = (1.0 - v**2) ** exponent
    for centre, level, amplitude, width, height in s.rv_bulges:
        bump = np.exp(-(((v - centre) / width) ** 2) - ((z - level) / height) ** 2)
        window = window * (1.0 + amplitude * (1.0 + 0.6 * fraction) * bump)
    h0[idx] = along * window
    return h0.reshape(out_shape), wall.reshape(out_shape)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
