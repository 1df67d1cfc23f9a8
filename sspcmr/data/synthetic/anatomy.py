"""Per-subject sampling of cardiac anatomy, function and pose (millimetres, degrees, mL).

Ranges follow ``docs/synthetic-data.md`` (adult normal values from CMR atlases and the MESA /
Hudsmith / Framingham reference studies, with pathology variants). The heart is described in a
*heart frame*: origin at the epicardial LV apex, unit vector ``long_axis`` pointing from the apex to
the base, ``rv_direction`` perpendicular to it and pointing from the LV axis through the septum to
the RV. Everything is in world RAS+ millimetres (x to the patient's right, y anterior, z superior).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .primitives import rotate, unit

#: Pathology mix: normal, dilated and hypertrophic hearts make up 70%; the M&Ms-1 classes
#: (hypertensive, athlete, ischaemic, non-compaction) and the M&Ms-2 RV classes (rv_dilated,
#: arrhythmogenic, tetralogy, interatrial, tricuspid) share the rest.
PATHOLOGY_PROBABILITIES: dict[str, float] = {
    "normal": 0.44,
    "dilated": 0.13,
    "hypertrophic": 0.13,
    "rv_dilated": 0.04,
    "arrhythmogenic": 0.03,
    "tetralogy": 0.03,
    "interatrial": 0.03,
    "tricuspid": 0.03,
    "hypertensive": 0.04,
    "athlete": 0.04,
    "ischaemic": 0.04,
    "noncompaction": 0.02,
}

#: Every code each public data set uses (M&Ms also has ``Other``, which the phantom never needs).
DATASET_PATHOLOGIES: dict[str, frozenset[str]] = {
    "mnms": frozenset({"NOR", "DCM", "HCM", "ARV", "HHD", "AHS", "IHD", "LVNC", "Other"}),
    "mnms2": frozenset({"NOR", "LV", "HCM", "ARR", "FALL", "CIA", "TRI", "DRV"}),
}

#: Pathology codes as the two public data sets spell them. Every phantom pathology is drawn the
#: same way whatever the layout and written as the closest class of the data set: M&Ms has one
#: ``ARV`` (abnormal right ventricle) class for every RV disease; M&Ms-2 has no hypertensive,
#: athlete, ischaemic or non-compaction class, so hypertensive concentric hypertrophy is written
#: ``HCM``, the athlete's heart (physiological) ``NOR`` and the ischaemic and non-compaction
#: hearts (reduced EF, dilated LV) ``LV``.
PATHOLOGY_CODES: dict[str, dict[str, str]] = {
    "mnms": {"normal": "NOR", "dilated": "DCM", "hypertrophic": "HCM", "rv_dilated": "ARV",
             "arrhythmogenic": "ARV", "tetralogy": "ARV", "interatrial": "ARV", "tricuspid": "ARV",
             "hypertensive": "HHD", "athlete": "AHS", "ischaemic": "IHD", "noncompaction": "LVNC"},
    "mnms2": {"normal": "NOR", "dilated": "LV", "hypertrophic": "HCM", "rv_dilated": "DRV",
              "arrhythmogenic": "ARR", "tetralogy": "FALL", "interatrial": "CIA", "tricuspid": "TRI",
              "hypertensive": "HCM", "athlete": "NOR", "ischaemic": "LV", "noncompaction": "LV"},
}


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


@dataclass
class HeartShape:
    """End-diastolic LV / RV shape and its functional parameters.

    LV contours are nested truncated super-ellipsoids of revolution about the long axis, with an
    elliptical, Fourier-perturbed cross-section; the normalised long-axis coordinate
    ``zeta`` runs from 0 at the base plane to 1 at the epicardial apex.
    """

    pathology: str
    lv_length: float  # epicardial apex -> base plane at ED
    apex_cap: float  # endocardial apex sits this far short of the epicardial apex
    profile_exponent: float  # 2 = ellipsoid, larger = fuller (more cylindrical) base half
    equator_offset: float  # widest section sits this fraction of the length above the base
    endo_radius: float  # mean endocardial radius at the widest section
    wall_thickness: float  # free-wall thickness at mid-ventricle
    septal_extra: float  # added septal thickness (large in asymmetric HCM)
    ellipticity: float  # cross-section axis ratio
    ellipse_angle: float  # radians
    harmonics: np.ndarray  # (K, 3): order, relative amplitude, phase
    base_descent: float  # mm of longitudinal shortening at ES
    twist_base: float  # degrees at ES
    twist_apex: float
    lv_ef: float
    rv_ef: float
    rv_edv_ratio: float  # RV EDV / LV EDV
    rv_top: float  # zeta of the RV outflow top (negative: above the LV base plane)
    rv_end: float  # zeta where the RV ends towards the apex
    rv_half_span: float  # radians: half the angle the RV wraps around the LV at mid-ventricle
    rv_centre_angle: float  # radians, offset of the RV centre from rv_direction
    rv_fullness: float  # window exponent: small = triangular/full, large = thin crescent
    rv_wall: float  # unlabelled RV free wall thickness
    papillary: np.ndarray  # (2, 5): angle, radius, zeta start, zeta end, inset
    trabecular_depth: float
    pericardial_fat: float
    atrium_scale: float
    vessel_scale: float
    rv_skew: float = 0.0  # where the thickest point sits in the span (-1..1; 0 = mid-angle)
    rv_taper: tuple[float, float] = (1.0, 1.0)  # per-horn factors on rv_fullness (negative, positive side)
    rv_retract: float = 0.0  # zeta by which the RV's apical end retracts at RV end-systole
    rv_bulges: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))  # (K, 5): v, zeta, amp, width v, zeta
    septal_flattening: float = 0.0  # fraction by which the septal LV section is cut flat
    ra_scale: float = 1.0  # extra right-atrial size factor
    infarct: np.ndarray | None = None  # (5,): angle, half width (rad), zeta start, thinning, residual motion
    trabecular_threshold: float = 0.2  # lower = denser trabecular network
    trabecular_start: float = 0.15  # zeta below which there is no trabecular layer


@dataclass
class Pose:
    """Where the heart sits in the torso and how the short-axis stack cuts it."""

    apex: np.ndarray  # world position of the epicardial apex at ED
    long_axis: np.ndarray  # unit, apex -> base
    rv_direction: np.ndarray  # unit, perpendicular to long_axis
    stack_normal: np.ndarray  # unit, short-axis slice normal pointing base -> apex
    lv_offset_in_fov: np.ndarray  # (2,) mm, LV centre relative to the image centre


@dataclass
class Torso:
    """Static body model around the heart (axial ellipses extruded along z, plus organs)."""

    half_width: float
    half_depth: float
    centre: np.ndarray  # (2,) axial centre (x, y)
    fat: float
    muscle: float
    spine_radius: float
    aorta_radius: float
    lung_half_axes: np.ndarray  # (3,)
    lung_separation: float
    diaphragm_right: float  # z of the liver dome apex
    diaphragm_left: float
    stomach_radius: float
    stomach_air: float  # fraction of the stomach filled with air (top part)


@dataclass
class Subject:
    """All sampled parameters of one synthetic subject (no image data)."""

    shape: HeartShape
    pose: Pose
    torso: Torso
    sex: str
    age: int
    height: float | None
    weight: float | None
    texture_seed: int


def sample_pathology(rng: np.random.Generator) -> str:
    """Draw a pathology from :data:`PATHOLOGY_PROBABILITIES`."""
    names = list(PATHOLOGY_PROBABILITIES)
    probs = np.array([PATHOLOGY_PROBABILITIES[n] for n in names])
    return names[int(rng.choice(len(names), p=probs / probs.sum()))]


def sample_shape(rng: np.random.Generator, pathology: str, sex: str) -> HeartShape:
    """Sample LV/RV shape and function for one subject.

    Normal: mid-cavity ED diameter 44-56 mm (men larger), wall 6-10 mm with the septum about 1 mm
    thicker, LV EF 55-75%, RV EDV 1.05-1.3 x LV EDV, RV EF 50-65%. Dilated: diameter 58-72 mm, thin
    wall, EF 15-45%. Hypertrophic: wall 12-16 mm plus 4-9 mm asymmetric septal thickening, EF 65-80%.
    Hypertensive: concentric wall 11-14 mm, EF 55-70%. Athlete: diameter 54-62 mm, wall 9-12 mm,
    EF 55-65%. Ischaemic: diameter 54-64 mm, EF 25-45%, one akinetic, thinned sector. Non-compaction:
    diameter 52-62 mm, compact wall 5-7 mm under a 6-10 mm dense trabecular layer, EF 25-45%.
    RV-dilated: RV EDV 1.5-2.1 x LV EDV, RV EF 30-45%. Arrhythmogenic: RV 1.5-2.2 x, RV EF 20-38%,
    thin free wall with 2-4 dyskinetic bulges. Tetralogy (repaired): RV 1.6-2.3 x, RV EF 33-48%,
    free wall 5-8 mm, flattened septum. Interatrial communication: RV 1.5-2.1 x, RV EF 50-62%,
    flattened septum, right atrium x1.25-1.5. Tricuspid regurgitation: RV 1.45-2.0 x, RV EF 45-60%,
    right atrium x1.3-1.6.
    """
    if pathology not in PATHOLOGY_PROBABILITIES:
        raise ValueError(f"unknown pathology {pathology!r}; choose from {sorted(PATHOLOGY_PROBABILITIES)}")
    male = sex == "M"
    diameter = _uniform(rng, (48.0, 56.0) if male else (44.0, 52.0))
    wall = _uniform(rng, (7.0, 10.0) if male else (6.0, 9.0))
    septal_extra = _uniform(rng, (0.5, 1.5))
    lv_ef = _uniform(rng, (0.55, 0.75))
    rv_ef = _uniform(rng, (0.50, 0.65))
    rv_ratio = _uniform(rng, (1.05, 1.30))
    length = _uniform(rng, (84.0, 100.0) if male else (78.0, 94.0))
    descent = _uniform(rng, (10.0, 15.0))
    # RV shape: span, fullness (window exponent at mid-ventricle), asymmetry of the two horns.
    rv_half_span = np.deg2rad(_uniform(rng, (60.0, 95.0)))
    rv_fullness = _uniform(rng, (1.2, 1.8))
    rv_skew = _uniform(rng, (-0.25, 0.25))
    rv_taper = (_uniform(rng, (0.8, 1.25)), _uniform(rng, (0.8, 1.25)))
    rv_wall = _uniform(rng, (2.0, 4.5))
    rv_retract = _uniform(rng, (0.04, 0.10))
    atrium_scale = _uniform(rng, (0.85, 1.2))
    ra_scale = 1.0
    flattening = 0.0
    bulges = np.zeros((0, 5))
    infarct = None
    trabecular_depth = _uniform(rng, (1.0, 3.0))
    trabecular_threshold, trabecular_start = 0.2, 0.15
    if pathology == "dilated":
        diameter = _uniform(rng, (58.0, 72.0))
        wall = _uniform(rng, (5.0, 7.0))
        lv_ef = _uniform(rng, (0.15, 0.45))
        length *= _uniform(rng, (1.05, 1.15))
        descent = _uniform(rng, (4.0, 8.0))
        rv_ef = _uniform(rng, (0.40, 0.60))
        rv_ratio = _uniform(rng, (0.85, 1.05))
        atrium_scale *= 1.15
    elif pathology == "hypertrophic":
        diameter = _uniform(rng, (38.0, 48.0))
        wall = _uniform(rng, (12.0, 16.0))
        septal_extra = _uniform(rng, (4.0, 9.0))
        lv_ef = _uniform(rng, (0.65, 0.80))
        descent = _uniform(rng, (7.0, 11.0))
        rv_ratio = _uniform(rng, (1.10, 1.40))
    elif pathology == "hypertensive":
        diameter = _uniform(rng, (44.0, 52.0))
        wall = _uniform(rng, (11.0, 14.0))
        septal_extra = _uniform(rng, (1.0, 3.0))
        lv_ef = _uniform(rng, (0.55, 0.70))
        descent = _uniform(rng, (8.0, 12.0))
        atrium_scale *= 1.1
    elif pathology == "athlete":
        diameter = _uniform(rng, (56.0, 62.0) if male else (54.0, 59.0))
        wall = _uniform(rng, (10.0, 12.0) if male else (9.0, 11.0))
        lv_ef = _uniform(rng, (0.55, 0.65))
        rv_ef = _uniform(rng, (0.50, 0.60))
        rv_ratio = _uniform(rng, (1.10, 1.30))
        length *= _uniform(rng, (1.03, 1.10))
    elif pathology == "ischaemic":
        diameter = _uniform(rng, (54.0, 64.0))
        lv_ef = _uniform(rng, (0.25, 0.45))
        descent = _uniform(rng, (6.0, 10.0))
        rv_ef = _uniform(rng, (0.45, 0.60))
        rv_ratio = _uniform(rng, (0.90, 1.10))
        # Angle, half width, zeta where the scar starts (it reaches the apex), thinning, residual motion.
        infarct = np.array([rng.uniform(-np.pi, np.pi), np.deg2rad(rng.uniform(40.0, 65.0)),
                            rng.uniform(0.25, 0.45), rng.uniform(0.35, 0.55), rng.uniform(0.0, 0.2)])
    elif pathology == "noncompaction":
        diameter = _uniform(rng, (52.0, 62.0))
        wall = _uniform(rng, (5.0, 7.0))
        lv_ef = _uniform(rng, (0.25, 0.45))
        descent = _uniform(rng, (6.0, 10.0))
        trabecular_depth = _uniform(rng, (6.0, 10.0))
        trabecular_threshold, trabecular_start = _uniform(rng, (-0.5, -0.2)), 0.3
    elif pathology == "rv_dilated":
        rv_ratio = _uniform(rng, (1.50, 2.10))
        rv_ef = _uniform(rng, (0.30, 0.45))
        rv_half_span *= 1.1
    elif pathology == "arrhythmogenic":
        rv_ratio = _uniform(rng, (1.50, 2.20))
        rv_ef = _uniform(rng, (0.20, 0.38))
        rv_wall = _uniform(rng, (1.5, 2.5))
        rv_half_span *= 1.1
        rv_retract *= 0.5
        count = int(rng.integers(2, 5))
        # Aneurysmal bulges: position across the span, level, amplitude, angular and level widths.
        bulges = np.stack([rng.choice([-1.0, 1.0], count) * rng.uniform(0.3, 0.75, count),
                           rng.uniform(0.1, 0.6, count), rng.uniform(0.3, 0.7, count), rng.uniform(0.10, 0.20, count),
                           rng.uniform(0.06, 0.12, count)], axis=1)
        ra_scale = _uniform(rng, (1.1, 1.3))
    elif pathology == "tetralogy":
        rv_ratio = _uniform(rng, (1.60, 2.30))
        rv_ef = _uniform(rng, (0.33, 0.48))
        rv_wall = _uniform(rng, (5.0, 8.0))
        flattening = _uniform(rng, (0.08, 0.15))
        rv_half_span *= 1.1
        rv_fullness *= 0.85
        ra_scale = _uniform(rng, (1.1, 1.3))
    elif pathology == "interatrial":
        rv_ratio = _uniform(rng, (1.50, 2.10))
        rv_ef = _uniform(rng, (0.50, 0.62))
        flattening = _uniform(rng, (0.06, 0.12))
        rv_half_span *= 1.1
        ra_scale = _uniform(rng, (1.25, 1.5))
    elif pathology == "tricuspid":
        rv_ratio = _uniform(rng, (1.45, 2.00))
        rv_ef = _uniform(rng, (0.45, 0.60))
        rv_half_span *= 1.05
        ra_scale = _uniform(rng, (1.3, 1.6))
    harmonics = np.stack(
        [np.arange(2, 6, dtype=float), rng.uniform(0.0, 0.04, 4), rng.uniform(0, 2 * np.pi, 4)], axis=1
    )
    # Antero-lateral and postero-medial muscles: angle, radius, level range (zeta), inset.
    papillary = np.array(
        [
            [side * np.deg2rad(rng.uniform(130, 160)), rng.uniform(2.5, 5.0), rng.uniform(0.25, 0.35),
             rng.uniform(0.62, 0.75), rng.uniform(0.5, 0.9)]
            for side in (1.0, -1.0)
        ]
    )
    return HeartShape(
        pathology=pathology,
        lv_length=length,
        apex_cap=_uniform(rng, (5.0, 8.0)),
        profile_exponent=_uniform(rng, (2.4, 3.4)),
        equator_offset=_uniform(rng, (0.03, 0.12)),
        endo_radius=diameter / 2.0,
        wall_thickness=wall,
        septal_extra=septal_extra,
        ellipticity=_uniform(rng, (0.85, 1.0)),
        ellipse_angle=_uniform(rng, (0.0, np.pi)),
        harmonics=harmonics,
        base_descent=descent,
        twist_base=-_uniform(rng, (3.0, 7.0)),
        twist_apex=_uniform(rng, (5.0, 11.0)),
        lv_ef=lv_ef,
        rv_ef=rv_ef,
        rv_edv_ratio=rv_ratio,
        rv_top=-_uniform(rng, (0.05, 0.12)),
        rv_end=_uniform(rng, (0.60, 0.80)),
        rv_half_span=float(rv_half_span),
        rv_centre_angle=np.deg2rad(_uniform(rng, (-15.0, 15.0))),
        rv_fullness=rv_fullness,
        rv_wall=rv_wall,
        papillary=papillary,
        trabecular_depth=trabecular_depth,
        pericardial_fat=_uniform(rng, (1.5, 6.0)),
        atrium_scale=atrium_scale,
        vessel_scale=_uniform(rng, (0.85, 1.15)),
        rv_skew=rv_skew,
        rv_taper=rv_taper,
        rv_retract=rv_retract,
        rv_bulges=bulges,
        septal_flattening=flattening,
        ra_scale=ra_scale,
        infarct=infarct,
        trabecular_threshold=trabecular_threshold,
        trabecular_start=trabecular_start,
    )


def sample_pose(rng: np.random.Generator, shape: HeartShape) -> Pose:
    """Sample the heart's position and axes in the torso and the short-axis stack tilt.

    The LV long axis points from a posterior-right-superior base towards a left-anterior-inferior
    apex, perturbed by up to about 12 degrees; the RV sits anterior-right of the LV, rotated in
    the short-axis plane by up to 25 degrees; the stack normal is tilted 0-15 degrees from the
    long axis (oblique slices give elliptical rings and asymmetric basal sections).
    """
    apex_dir = unit(np.array([-0.55, 0.50, -0.62]) + rng.normal(0.0, 0.12, 3))
    long_axis = -apex_dir
    rv_hint = np.array([0.55, 0.80, 0.15])
    rv = unit(rv_hint - rv_hint.dot(long_axis) * long_axis)
    rv = rotate(rv, long_axis, np.deg2rad(rng.uniform(-25.0, 25.0)))
    tilt = np.deg2rad(rng.uniform(0.0, 15.0))
    tilt_axis = rotate(rv, long_axis, rng.uniform(0, 2 * np.pi))
    stack_normal = rotate(-long_axis, tilt_axis, tilt)
    mid = np.array([-30.0, 25.0, 0.0]) + rng.normal(0.0, [8.0, 8.0, 6.0])
    apex = mid - 0.5 * shape.lv_length * long_axis
    offset_dir = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(20.0, 40.0) * np.array([np.cos(offset_dir), np.sin(offset_dir)])
    return Pose(apex=apex, long_axis=long_axis, rv_direction=rv, stack_normal=stack_normal,
                lv_offset_in_fov=offset)


def sample_torso(rng: np.random.Generator, sex: str) -> Torso:
    """Sample the body: 280-380 mm wide, 200-280 mm deep, fat 5-25 mm, chest wall 10-20 mm."""
    male = sex == "M"
    return Torso(
        half_width=_uniform(rng, (150.0, 190.0) if male else (140.0, 175.0)),
        half_depth=_uniform(rng, (105.0, 140.0) if male else (100.0, 130.0)),
        centre=rng.normal(0.0, 6.0, 2),
        fat=_uniform(rng, (5.0, 25.0)),
        muscle=_uniform(rng, (10.0, 20.0)),
        spine_radius=_uniform(rng, (16.0, 21.0)),
        aorta_radius=_uniform(rng, (10.0, 14.0)),
        lung_half_axes=np.array([_uniform(rng, (55.0, 70.0)), _uniform(rng, (75.0, 95.0)), 160.0]),
        lung_separation=_uniform(rng, (80.0, 100.0)),
        diaphragm_right=_uniform(rng, (-55.0, -30.0)),
        diaphragm_left=_uniform(rng, (-75.0, -50.0)),
        stomach_radius=_uniform(rng, (35.0, 55.0)),
        stomach_air=_uniform(rng, (0.0, 0.5)),
    )


def sample_subject(rng: np.random.Generator, pathology: str | None = None) -> Subject:
    """Sample a complete subject: demographics, heart shape and function, pose and torso."""
    sex = "M" if rng.random() < 0.6 else "F"
    pathology = pathology or sample_pathology(rng)
    shape = sample_shape(rng, pathology, sex)
    height = float(np.round(rng.normal(176 if sex == "M" else 163, 7), 0))
    weight = float(np.round(rng.normal(80 if sex == "M" else 66, 12), 1))
    return Subject(
        shape=shape,
        pose=sample_pose(rng, shape),
        torso=sample_torso(rng, sex),
        sex=sex,
        age=int(rng.integers(18, 85)),
        height=None if rng.random() < 0.15 else height,
        weight=None if rng.random() < 0.15 else weight,
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )
