"""Continuous 3D+t heart model: tissue and label at any world point and frame.

Geometry (heart frame, see :mod:`.anatomy`): a point has long-axis distance ``s`` from the
epicardial apex, radius ``rho`` from the LV long axis and angle ``phi`` measured from the RV
direction. At frame t the base plane sits at ``s = L(t)`` (the base descends towards the nearly
still apex) and the normalised coordinate is ``zeta = 1 - s / L(t)``: 0 at the base plane, 1 at the
epicardial apex. Every slab of constant ``zeta`` is a material slab:

* the endocardial radius scales by ``sqrt(k(t))`` with ``k = v(t) * L_ED / L(t)`` so that the cavity
  volume follows the volume curve ``v(t)`` exactly;
* the epicardium keeps each angular sector's myocardial area times slab thickness constant
  (``r_epi^2 - r_endo^2`` scales by ``L_ED / L(t)``), so the myocardial volume is constant and the
  wall thickens in systole without any further rule;
* the RV is a crescent on the septal side between ``r_in`` (the LV epicardium) and
  ``r_in + H(t) h0(zeta, phi, f(t))``: ``h0`` is 0 at the two septal insertion points (the horns)
  and thickest near the free-wall mid-angle, ``(1 - v^2)^p`` across the span with a per-horn
  exponent ``p`` (fuller at the base); ``f(t)`` is the RV systolic fraction, by which the RV's
  apical end retracts (longitudinal shortening) and dyskinetic bulges grow. ``H(t)`` is solved per
  frame from a quadratic so that the RV volume follows its own curve exactly; the horns stay on
  the LV epicardium, so systole moves the free wall inwards most at mid-angle (bellows);
* an ischaemic sector keeps a fixed fraction of its ED cavity area (akinesia) while the remote
  cavity area factor is solved (linear) so that the cavity volume stays exact.

Labels (M&Ms convention): 1 LV blood pool including papillary muscles and trabeculae, 2 LV
myocardium, 3 RV blood pool (the RV free wall is not labelled). Atria, aortic root, pulmonary trunk
and pericardial fat are unlabelled.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .anatomy import HeartShape, Pose
from .frame import FrameState
from .motion import CardiacCycle
from .primitives import lookup, wrap
from .structures import cavity_tissue, paint_atria_and_vessels
from .tissues import Tissue
from .ventricle_shape import infarct_weight, lv_section, lv_wall, rv_fields

LABEL_BACKGROUND, LABEL_LV, LABEL_MYO, LABEL_RV = 0, 1, 2, 3


class HeartModel:
    """Implicit heart of one subject over its cardiac cycle.

    Args:
        shape: sampled heart shape and function.
        pose: heart position and axes in world coordinates.
        cycle: frame timing and volume curves.
    """

    def __init__(self, shape: HeartShape, pose: Pose, cycle: CardiacCycle) -> None:
        self.shape = shape
        self.pose = pose
        self.cycle = cycle
        self.axis = pose.long_axis
        self.e1 = pose.rv_direction
        self.e2 = np.cross(self.axis, self.e1)
        self.zeta_endo_apex = 1.0 - shape.apex_cap / shape.lv_length
        self.zeta_equator = -shape.equator_offset
        # Lookup tables: the contour functions are smooth in one variable each, and tabulating
        # them makes per-point evaluation a few interpolations instead of powers and cosines.
        self._table_phi = np.linspace(-np.pi, np.pi, 2048, endpoint=False)
        raw = lv_section(shape, self._table_phi)
        self._section_norm = float(np.sqrt(np.mean(raw**2)))
        self._table_section = raw / self._section_norm
        self._table_wall = lv_wall(shape, self._table_phi)
        self._table_zeta = np.linspace(self.zeta_equator, 1.0, 2049)
        self._table_endo = self._profile(self._table_zeta, self.zeta_endo_apex)
        self._table_epi = self._profile(self._table_zeta, 1.0)
        self._grid_zeta = (np.arange(240) + 0.5) / 240 * (1.0 - shape.rv_top) + shape.rv_top
        self._grid_phi = np.linspace(-np.pi, np.pi, 256, endpoint=False)
        self._rv_grids: dict[float, np.ndarray] = {}
        self.lv_edv_mm3, _, _ = self._integrate(self._state_without_rv(0.0), self._rv_grid(0.0))
        rv_peak = shape.rv_edv_ratio * self.lv_edv_mm3
        self.states: list[FrameState] = []
        self._volumes: list[tuple[float, float, float]] = []
        max_rv = 0.0
        for frame in range(cycle.frames):
            deformation = float(cycle.deformation(frame))
            base = self._state_without_rv(deformation, float(cycle.lv_volume_fraction(frame, shape.lv_ef)))
            base = replace(base, rv_deformation=float(cycle.rv_deformation(frame)))
            h0 = self._rv_grid(base.rv_deformation)
            target = rv_peak * float(cycle.rv_volume_fraction(frame, shape.rv_ef))
            state = replace(base, rv_height=self._solve_rv_height(base, h0, target))
            self.states.append(state)
            self._volumes.append(self._integrate(state, h0))
            max_rv = max(max_rv, state.rv_height * float(h0.max()))
        self._rv_grids.clear()
        max_wall_scale = max(st.wall_scale for st in self.states)
        epi_max = (shape.endo_radius * self._table_section.max() + self._table_wall.max()) * np.sqrt(max_wall_scale)
        self._max_radius = float(epi_max + max_rv + shape.rv_wall + 3.0 * shape.pericardial_fat + 2.0)
        self._extent = float(max(self._max_radius, 2.3 * shape.endo_radius + 40.0) + 12.0)

    # ----------------------------------------------------------------------------------------
    # ED shape
    def section(self, phi: np.ndarray) -> np.ndarray:
        """Cross-section shape factor (RMS 1, so it preserves the area of a circle)."""
        return lookup(self._table_section, -np.pi, 2 * np.pi, phi, periodic=True)

    def wall(self, phi: np.ndarray) -> np.ndarray:
        """ED wall thickness by angle: thickest at the septum (phi = 0)."""
        return lookup(self._table_wall, -np.pi, 2 * np.pi, phi, periodic=True)

    def _profile(self, zeta: np.ndarray, end: float) -> np.ndarray:
        p = self.shape.profile_exponent
        x = np.clip((zeta - self.zeta_equator) / (end - self.zeta_equator), 0.0, 1.0)
        return (1.0 - x**p) ** (1.0 / p)

    def infarct_mask(self, zeta: np.ndarray, phi: np.ndarray) -> np.ndarray | None:
        """Ischaemic sector weight (0-1, smooth edges) by level and angle; None without one."""
        return infarct_weight(self.shape, zeta, phi)

    def _radii_ed_mask(self, zeta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        section = self.shape.endo_radius * self.section(phi)
        span = 1.0 - self.zeta_equator
        endo = section * lookup(self._table_endo, self.zeta_equator, span, zeta)
        wall = self.wall(phi)
        mask = self.infarct_mask(zeta, phi)
        if mask is not None:
            wall = wall * (1.0 - self.shape.infarct[3] * mask)  # scar thinning
        epi = (section + wall) * lookup(self._table_epi, self.zeta_equator, span, zeta)
        return endo, epi, mask

    def radii_ed(self, zeta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Endocardial and epicardial radii at ED (mm)."""
        endo, epi, _ = self._radii_ed_mask(zeta, phi)
        return endo, epi

    def radii(self, zeta: np.ndarray, phi: np.ndarray, state: FrameState) -> tuple[np.ndarray, np.ndarray]:
        """Endocardial and epicardial radii at a frame (exact cavity and myocardial volumes)."""
        endo_ed, epi_ed, mask = self._radii_ed_mask(zeta, phi)
        scale = state.cavity_scale
        if mask is not None:
            scale = scale + (state.infarct_scale - scale) * mask
        endo = np.sqrt(scale) * endo_ed
        epi = np.sqrt(endo**2 + state.wall_scale * (epi_ed**2 - endo_ed**2))
        return endo, epi

    def rv_profile(self, zeta: np.ndarray, phi: np.ndarray, fraction: float = 0.0) -> np.ndarray:
        """Unscaled RV cavity thickness ``h0`` at RV systolic fraction ``fraction`` (0 at RV ED)."""
        return self.rv_fields(zeta, phi, fraction)[0]

    def rv_fields(self, zeta: np.ndarray, phi: np.ndarray, fraction: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """RV cavity thickness ``h0`` and free-wall factor (0-1): :func:`.ventricle_shape.rv_fields`."""
        return rv_fields(self.shape, zeta, phi, fraction)

    # ----------------------------------------------------------------------------------------
    # Frame states and volumes
    def _state_without_rv(self, deformation: float, volume_fraction: float = 1.0) -> FrameState:
        length = self.shape.lv_length - self.shape.base_descent * deformation
        wall_scale = self.shape.lv_length / length
        scale = volume_fraction * wall_scale
        if self.shape.infarct is None:
            return FrameState(length, scale, wall_scale, 0.0, deformation)
        # The ischaemic sector keeps `residual` of the normal area change; the remote factor is
        # solved so that the cavity volume is unchanged: k_r (A - A_m) + k_i A_m = k A.
        endo_ed, _, _, inside, _, mask = self._quadrature()
        area = float(np.sum(endo_ed**2 * inside))
        area_scar = float(np.sum(endo_ed**2 * inside * mask))
        infarct_scale = 1.0 - self.shape.infarct[4] * (1.0 - scale)
        remote = (scale * area - infarct_scale * area_scar) / (area - area_scar)
        return FrameState(length, remote, wall_scale, 0.0, deformation, infarct_scale=infarct_scale)

    def _quadrature(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, np.ndarray]:
        """ED radii, grid levels, base-plane mask, cell size and ischaemic weight on the (zeta, phi) grid.

        Frame-independent (twist rotates contours without changing areas), so computed once.
        """
        if not hasattr(self, "_quad"):
            zeta, phi = np.meshgrid(self._grid_zeta, self._grid_phi, indexing="ij")
            endo_ed, epi_ed, mask = self._radii_ed_mask(np.clip(zeta, 0.0, 1.0), phi)
            cell = (self._grid_zeta[1] - self._grid_zeta[0]) * (self._grid_phi[1] - self._grid_phi[0])
            mask = np.zeros_like(endo_ed) if mask is None else mask
            self._quad = (endo_ed, epi_ed, zeta, zeta >= 0.0, cell, mask)
        return self._quad

    def _rv_grid(self, fraction: float) -> np.ndarray:
        """``h0`` on the quadrature grid at an RV systolic fraction (cached while states are built)."""
        if fraction not in self._rv_grids:
            zeta, phi = np.meshgrid(self._grid_zeta, self._grid_phi, indexing="ij")
            self._rv_grids[fraction] = self.rv_profile(zeta, phi, fraction)
        return self._rv_grids[fraction]

    def _frame_radii(self, state: FrameState) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        endo_ed, epi_ed, _, inside, cell, mask = self._quadrature()
        scale = state.cavity_scale + (state.infarct_scale - state.cavity_scale) * mask
        endo = np.sqrt(scale) * endo_ed
        epi = np.sqrt(endo**2 + state.wall_scale * (epi_ed**2 - endo_ed**2))
        return endo, epi, inside, cell

    def _solve_rv_height(self, state: FrameState, h0: np.ndarray, target_mm3: float) -> float:
        """RV crescent height giving ``target_mm3``: the volume is a1 H + a2 H^2 (exact quadratic)."""
        _, r_in, _, cell = self._frame_radii(state)
        a1 = float(np.sum(r_in * h0)) * cell * state.length
        a2 = float(np.sum(0.5 * h0**2)) * cell * state.length
        return (-a1 + np.sqrt(a1 * a1 + 4.0 * a2 * target_mm3)) / (2.0 * a2)

    def _integrate(self, state: FrameState, h0: np.ndarray) -> tuple[float, float, float]:
        """LV cavity, LV myocardium and RV cavity volumes (mm^3) by quadrature in (zeta, phi)."""
        endo, epi, inside, cell = self._frame_radii(state)
        lv = float(np.sum(0.5 * endo**2 * inside)) * cell * state.length
        myo = float(np.sum(0.5 * (epi**2 - endo**2) * inside)) * cell * state.length
        h = state.rv_height * h0
        rv = float(np.sum(epi * h + 0.5 * h**2)) * cell * state.length
        return lv, myo, rv

    def volumes(self, frame: int) -> dict[str, float]:
        """True continuous volumes at a frame in mL: ``lv``, ``myo`` and ``rv``."""
        lv, myo, rv = self._volumes[frame]
        return {"lv": lv / 1000.0, "myo": myo / 1000.0, "rv": rv / 1000.0}

    # ----------------------------------------------------------------------------------------
    # Point classification
    def base_centre(self, state: FrameState) -> np.ndarray:
        """World position of the LV base-plane centre at a frame."""
        return self.pose.apex + state.length * self.axis

    def twist(self, zeta: np.ndarray, state: FrameState) -> np.ndarray:
        """Systolic twist (radians) by level: clockwise at the base, anticlockwise at the apex."""
        s = self.shape
        return np.deg2rad(state.deformation * (s.twist_base * (1.0 - zeta) + s.twist_apex * zeta))

    def heart_coordinates(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Long-axis distance ``s``, radius ``rho`` and angle ``phi`` of world points (..., 3)."""
        rel = points - self.pose.apex
        s = rel @ self.axis
        x = rel @ self.e1
        y = rel @ self.e2
        return s, np.hypot(x, y), np.arctan2(y, x)

    def classify(self, points: np.ndarray, state: FrameState,
                 coordinates: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Tissue code and label of world points (..., 3) at a frame.

        Args:
            points: world points.
            state: frame geometry.
            coordinates: precomputed :meth:`heart_coordinates` of ``points`` (they do not change
                between frames, so renderers compute them once per slice).

        Returns:
            ``(tissue, label)`` as uint8 arrays of the points' shape; ``tissue`` is
            :attr:`Tissue.NONE` where the heart model has nothing (the torso shows through).
        """
        shape = points.shape[:-1]
        if coordinates is None:
            coordinates = self.heart_coordinates(points)
        s, rho, phi = (c.reshape(-1) for c in coordinates)
        flat_points = points.reshape(-1, 3)
        tissue = np.full(s.shape, Tissue.NONE, dtype=np.uint8)
        label = np.zeros(s.shape, dtype=np.uint8)
        zeta_all = 1.0 - s / state.length
        # Everything below lives within this radius of the LV axis and this range of levels.
        candidates = np.flatnonzero(
            (zeta_all >= self.shape.rv_top - 0.06) & (zeta_all <= 1.04) & (rho < self._max_radius)
        )
        self._paint_ventricles(candidates, zeta_all, rho, phi, state, tissue, label)
        near_base = np.flatnonzero((zeta_all < 45.0 / state.length) & (rho < self.extent()))
        paint_atria_and_vessels(self, flat_points[near_base], state, near_base, tissue)
        return tissue.reshape(shape), label.reshape(shape)

    def _paint_ventricles(self, idx: np.ndarray, zeta_all: np.ndarray, rho_all: np.ndarray, phi_all: np.ndarray,
                          state: FrameState, tissue: np.ndarray, label: np.ndarray) -> None:
        sh = self.shape
        zeta, rho = zeta_all[idx], rho_all[idx]
        zc = np.clip(zeta, 0.0, 1.0)
        phi = wrap(phi_all[idx] - self.twist(zc, state))
        endo, epi = self.radii(zc, phi, state)
        h0, wall_factor = self.rv_fields(zeta, phi, state.rv_deformation)
        h = state.rv_height * h0
        free_wall = sh.rv_wall * wall_factor
        outer = epi + h + free_wall
        # Pericardial fat: a bright rim, thickest in the atrioventricular groove (zeta ~ 0).
        fat = sh.pericardial_fat * (1.0 + 2.0 * np.exp(-((zeta / 0.12) ** 2)))
        fat = fat * (0.6 + 0.4 * np.cos(5 * phi + 3 * zeta))
        local_tissue = np.full(idx.shape, Tissue.NONE, dtype=np.uint8)
        local_label = np.zeros(idx.shape, dtype=np.uint8)
        local_tissue[(rho < outer + fat) & (rho >= outer)] = Tissue.FAT
        local_tissue[(free_wall > 0.0) & (rho >= epi + h) & (rho < outer)] = Tissue.MYOCARDIUM
        rv = (h > 0.0) & (rho >= epi) & (rho < epi + h)
        local_tissue[rv] = Tissue.BLOOD
        local_label[rv] = LABEL_RV
        in_lv = (zeta >= 0.0) & (zeta <= 1.0)
        myo = in_lv & (rho < epi)
        local_tissue[myo] = Tissue.MYOCARDIUM
        local_label[myo] = LABEL_MYO
        cavity = np.flatnonzero(in_lv & (rho < endo))
        local_label[cavity] = LABEL_LV
        local_tissue[cavity] = cavity_tissue(self, zeta[cavity], rho[cavity], phi[cavity], endo[cavity], state)
        tissue[idx] = local_tissue
        label[idx] = local_label

    def extent(self) -> float:
        """Radius (mm) around the LV axis within which the heart model can paint anything."""
        return self._extent

