"""What the heart model paints besides the ventricular walls and cavities: the unlabelled structures inside
the LV cavity (trabeculation, papillary muscles; they carry the LV label) and around the base (left and right
atria, aortic root, pulmonary trunk). Functions of a :class:`~sspcmr.phantom.heart.HeartModel`, split
from it so that the ventricle geometry stays on its own."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from .frame import FrameState
from .primitives import capsule_distance2, in_ellipsoid, unit, unit_perp
from .tissues import Tissue


class HeartModel(Protocol):
    """What these functions read of :class:`sspcmr.phantom.heart.HeartModel` (a protocol, so this module does
    not import the heart model that imports it)."""

    shape: Any
    pose: Any
    axis: np.ndarray

    def radii(self, zeta: np.ndarray, phi: np.ndarray, state: FrameState) -> tuple[np.ndarray, np.ndarray]: ...

    def base_centre(self, state: FrameState) -> np.ndarray: ...


def cavity_tissue(heart: HeartModel, zeta: np.ndarray, rho: np.ndarray, phi: np.ndarray, endo: np.ndarray,
                  state: FrameState) -> np.ndarray:
    """Blood, trabeculation and papillary muscles inside the (LV-labelled) cavity."""
    sh = heart.shape
    out = np.full(zeta.shape, Tissue.BLOOD, dtype=np.uint8)
    depth = sh.trabecular_depth * np.sqrt(state.cavity_scale)
    pattern = np.cos(9 * phi + 2.5 * np.sin(11 * zeta)) + 0.6 * np.cos(14 * phi - 7 * zeta + 1.3)
    layer = (rho > endo - depth) & (pattern > sh.trabecular_threshold) & (zeta > sh.trabecular_start)
    out[layer] = Tissue.TRABECULAR
    for angle, radius, z0, z1, inset in sh.papillary:
        along = np.clip((zeta - z0) / (z1 - z0), 0.0, 1.0)
        a = radius * np.sqrt(state.wall_scale) * np.sqrt(np.sin(np.pi * along))
        r_c, _ = heart.radii(zeta, np.full_like(phi, angle), state)
        r_c = r_c - inset * a
        dx = rho * np.cos(phi) - r_c * np.cos(angle)
        dy = rho * np.sin(phi) - r_c * np.sin(angle)
        out[(dx * dx + dy * dy < a * a) & (along > 0) & (along < 1)] = Tissue.MYOCARDIUM
    return out


def paint_atria_and_vessels(heart: HeartModel, points: np.ndarray, state: FrameState, idx: np.ndarray,
                            tissue: np.ndarray) -> None:
    """Unlabelled bright blood above and beside the base: atria, aortic root, pulmonary trunk.

    Painted only where the ventricle model left nothing labelled-looking behind: atria and
    vessels take precedence over pericardial fat but not over ventricular tissue.
    """
    if idx.size == 0:
        return
    sh, pose = heart.shape, heart.pose
    base = heart.base_centre(state)
    n = heart.axis
    posterior = unit_perp(np.array([0.0, -1.0, 0.0]), n)
    right = unit_perp(np.array([1.0, 0.0, 0.0]), n)
    up = np.array([0.0, 0.0, 1.0])
    r = sh.endo_radius
    grow = 1.0 + 0.15 * state.deformation  # atria fill while the ventricles eject
    la = base + 0.55 * r * posterior - 0.2 * r * right + 20.0 * sh.atrium_scale * n
    ra = base + 0.35 * r * posterior + 1.3 * r * right + 16.0 * sh.atrium_scale * n
    local = np.full(idx.shape, Tissue.NONE, dtype=np.uint8)
    for centre, axes in (
        (la, np.array([30.0, 24.0, 22.0]) * sh.atrium_scale * grow),
        (ra, np.array([24.0, 22.0, 26.0]) * sh.atrium_scale * sh.ra_scale * grow),
    ):
        local[in_ellipsoid(points, centre, (right, posterior, n), axes)] = Tissue.BLOOD
    wall = 2.0
    aortic_valve = base - 6.0 * n - 0.45 * r * posterior + 0.15 * r * right
    aorta_end = aortic_valve + 55.0 * unit(n + 0.8 * up + 0.2 * right)
    rvot = base + (-sh.rv_top * state.length) * n + (r + sh.wall_thickness + 8.0) * pose.rv_direction
    trunk_end = rvot + 45.0 * unit(n + 0.6 * up - 0.5 * right + 0.3 * posterior)
    for start, end, radius in ((aortic_valve, aorta_end, 13.0), (rvot, trunk_end, 12.0)):
        d2 = capsule_distance2(points, start, end)
        radius *= sh.vessel_scale
        local[d2 < (radius + wall) ** 2] = Tissue.MYOCARDIUM
        local[d2 < radius**2] = Tissue.BLOOD
    current = tissue[idx]
    # Ventricular tissue (anything but fat or nothing) keeps precedence.
    keep = (current != Tissue.NONE) & (current != Tissue.FAT)
    paint = (local != Tissue.NONE) & ~keep
    tissue[idx[paint]] = local[paint]
