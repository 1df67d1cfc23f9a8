"""One synthetic subject end to end: sample, plan the stacks, render, quantise, lay out as a vendor.

The result holds on-disk arrays (vendor dtype and orientation), labels of *every* frame, exact
affines, and the truths a test or a probe needs (volumes, ejection fractions, LV mass, normalised
slice positions, the heart's world axes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .acquisition import Acquisition, sample_acquisition
from .anatomy import Subject, sample_subject
from .artefacts import OffResonanceBands, sample_breath_hold
from .geometry import PlaneStack, apply_orientation, make_stack
from .heart import HeartModel
from .motion import CardiacCycle, sample_cycle
from .noise import BandNoise
from .primitives import rotate
from .profiles import SIZE_PRESETS, VENDOR_PROFILES, SizePreset
from .render import SceneModels, quantise, render_series
from .tissues import CoilBias, Tissue, tissue_signals
from .torso import TorsoModel

#: Mass density of myocardium used for LV mass (g/mL).
MYOCARDIAL_DENSITY = 1.05


@dataclass
class Series:
    """One stored image series: on-disk array, labels of every frame and the affine.

    ``image`` and ``labels`` are (nx, ny, slices, frames) in the vendor's layout.
    """

    image: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    scl_slope: float | None
    sform: bool


@dataclass
class SyntheticSubject:
    """A rendered subject and its truths."""

    vendor: str
    subject: Subject
    acquisition: Acquisition
    cycle: CardiacCycle
    short_axis: Series
    long_axis: dict[str, Series] = field(default_factory=dict)
    truth: dict = field(default_factory=dict)


def plan_stack(rng: np.random.Generator, acq: Acquisition, heart: HeartModel, size: SizePreset) -> PlaneStack:
    """Place the short-axis stack: 1-2 slices above the base to 0-2 beyond the apex.

    Realistic sizes keep the vendor's slice spacing where the slice count allows it; the small
    presets keep the drawn slice count and stretch the spacing to cover the heart. The slice
    thickness keeps its ratio to the spacing (the rest is the gap).
    """
    pose, shape = heart.pose, heart.shape
    nominal = acq.nominal_slice_spacing
    cos_tilt = abs(float(pose.long_axis @ pose.stack_normal))
    above = rng.uniform(0.3, 1.3) * nominal / cos_tilt
    below = rng.uniform(0.0, 1.2) * nominal / cos_tilt
    cover = (shape.lv_length + above + below) * cos_tilt
    if size.matrix is None:
        count = int(np.clip(round(cover / nominal) + 1, size.slices[0], size.slices[1]))
    else:
        count = acq.slices
    spacing = cover / (count - 1)
    thickness = min(acq.slice_thickness * spacing / nominal, spacing)
    acq.slices = count
    acq.slice_thickness = float(thickness)
    acq.breath_hold = acq.breath_hold[:count]
    # First slice crosses the LV axis `above` mm beyond the base plane.
    top = pose.apex + (shape.lv_length + above) * pose.long_axis
    mid = pose.apex + 0.5 * shape.lv_length * pose.long_axis
    u_hint = rotate(np.array([1.0, 0.0, 0.0]) - pose.stack_normal[0] * pose.stack_normal, pose.stack_normal,
                     acq.in_plane_angle)
    probe = make_stack(top, u_hint, pose.stack_normal, acq.pixel_spacing, (*acq.matrix, count), spacing, thickness)
    # Shift the field of view so that the LV centre sits off the image centre by the sampled offset.
    offset = pose.lv_offset_in_fov
    mid_in_plane = mid - ((mid - top) @ pose.stack_normal) * pose.stack_normal
    centre = mid_in_plane - offset[0] * probe.u - offset[1] * probe.v
    return make_stack(centre, probe.u, pose.stack_normal, acq.pixel_spacing, (*acq.matrix, count), spacing, thickness)


def long_axis_stack(heart: HeartModel, acq: Acquisition, view: str, rng: np.random.Generator) -> PlaneStack:
    """Single-slice long-axis plane through the LV long axis.

    ``4ch``: contains the long axis and (nearly) the RV direction, so it cuts LV, RV and both atria.
    ``2ch``: contains the long axis, perpendicular to the four-chamber plane (LV and LA only).
    """
    n, e1 = heart.axis, heart.e1
    in_plane = rotate(e1, n, np.deg2rad(rng.uniform(-12.0, 12.0)))
    if view == "2ch":
        in_plane = np.cross(n, in_plane)
    normal = np.cross(n, in_plane)
    normal /= np.linalg.norm(normal)
    centre = heart.pose.apex + 0.62 * heart.shape.lv_length * n
    return make_stack(centre, -n, normal, acq.pixel_spacing, (acq.matrix[0], acq.matrix[0], 1),
                      acq.nominal_slice_spacing, min(8.0, acq.nominal_slice_spacing))


def _slice_positions(stack: PlaneStack, heart: HeartModel, shifts: np.ndarray) -> np.ndarray:
    """Normalised position (0 base plane at ED, 1 epicardial apex) where each slice crosses the LV axis."""
    n = heart.axis
    out = []
    for k in range(stack.shape[2]):
        plane_point = stack.origin + k * stack.spacing[2] * stack.normal - shifts[k]
        s = ((plane_point - heart.pose.apex) @ stack.normal) / (n @ stack.normal)
        out.append(1.0 - s / heart.shape.lv_length)
    return np.array(out)


def prepare_scene(seed: np.random.SeedSequence | int, vendor: str, size: str = "tiny",
                  pathology: str | None = None) -> tuple:
    """Sample a subject, its acquisition and scene models and plan the short-axis stack (no rendering).

    Returns:
        ``(rng, profile, preset, subject, acquisition, cycle, heart, scene, stack)``; ``rng`` is
        positioned where :func:`synthesise_subject` continues with rendering.
    """
    if vendor not in VENDOR_PROFILES:
        raise ValueError(f"unknown vendor profile {vendor!r}; choose from {sorted(VENDOR_PROFILES)}")
    if size not in SIZE_PRESETS:
        raise ValueError(f"unknown size {size!r}; choose from {sorted(SIZE_PRESETS)}")
    rng = np.random.default_rng(seed)
    profile, preset = VENDOR_PROFILES[vendor], SIZE_PRESETS[size]
    subject = sample_subject(rng, pathology)
    acq = sample_acquisition(rng, profile, preset)
    cycle = sample_cycle(rng, acq.frames)
    heart = HeartModel(subject.shape, subject.pose, cycle)
    tex_rng = np.random.default_rng(subject.texture_seed)
    scene = SceneModels(
        heart=heart,
        torso=TorsoModel(subject.torso, tex_rng, subject.sex),
        signals=tissue_signals(acq.field, acq.flip_angle, rng),
        texture=BandNoise(tex_rng, 160, (3.0, 50.0), slope=0.4),
        bias=CoilBias(rng, (subject.torso.half_width, subject.torso.half_depth), subject.torso.centre,
                      acq.bias_ratio),
        bands=_bands(acq, heart, tex_rng),
    )
    stack = plan_stack(rng, acq, heart, preset)
    return rng, profile, preset, subject, acq, cycle, heart, scene, stack


def synthesise_subject(
    seed: np.random.SeedSequence | int,
    vendor: str,
    size: str = "tiny",
    pathology: str | None = None,
    long_axis_views: tuple[str, ...] = ("4ch", "2ch"),
) -> SyntheticSubject:
    """Sample and render one subject.

    Args:
        seed: seed (or seed sequence) of this subject; the same seed gives identical arrays.
        vendor: vendor profile code (``A``-``E``).
        size: size preset name (``tiny``, ``small``, ``realistic``).
        pathology: force a pathology (``normal``, ``dilated``, ``hypertrophic``, ``rv_dilated``).
        long_axis_views: long-axis views to render (``4ch``, ``2ch``).
    """
    rng, profile, preset, subject, acq, cycle, heart, scene, stack = prepare_scene(seed, vendor, size, pathology)
    magnitude, labels = render_series(stack, scene, acq, acq.breath_hold, rng)
    stored, reference = quantise(magnitude, acq, profile.dtype, profile.scl_slope)
    image, affine = apply_orientation(stored, stack.affine, profile.orientation)
    label_image, _ = apply_orientation(labels.astype(profile.label_dtype), stack.affine, profile.orientation)
    short_axis = Series(image, label_image, affine, profile.scl_slope, profile.orientation.sform)

    long_axis: dict[str, Series] = {}
    for view in long_axis_views:
        plane = long_axis_stack(heart, acq, view, rng)
        shift, _ = sample_breath_hold(rng, (acq.breath_hold_sd, acq.breath_hold_sd), 0.0, 1)
        mag, lab = render_series(plane, scene, acq, shift, rng)
        la_stored, _ = quantise(mag, acq, profile.dtype, profile.scl_slope, reference)
        la_image, la_affine = apply_orientation(la_stored, plane.affine, profile.orientation)
        la_labels, _ = apply_orientation(lab.astype(profile.label_dtype), plane.affine, profile.orientation)
        long_axis[view] = Series(la_image, la_labels, la_affine, profile.scl_slope, profile.orientation.sform)

    positions = _slice_positions(stack, heart, acq.breath_hold)
    if profile.orientation.apex_first:
        positions = positions[::-1]
    result = SyntheticSubject(vendor, subject, acq, cycle, short_axis, long_axis)
    result.truth = _truths(heart, cycle, positions, subject, acq, scene.signals)
    return result


def heart_label_radius(heart: HeartModel) -> float:
    """Radius (mm) around the LV axis that holds every heart label (LV, myocardium, RV) in every frame."""
    return float(getattr(heart, "_max_radius", heart.extent())) + 3.0


def _bands(acq: Acquisition, heart: HeartModel, rng: np.random.Generator) -> OffResonanceBands | None:
    if not acq.banding:
        return None
    return OffResonanceBands(rng, heart.pose.apex, heart.axis, heart.shape.lv_length, heart_label_radius(heart),
                             acq.band_scale, acq.band_depth, acq.band_width)


def _truths(heart: HeartModel, cycle: CardiacCycle, positions: np.ndarray, subject: Subject,
            acq: Acquisition, signals: np.ndarray) -> dict:
    volumes = [heart.volumes(t) for t in range(cycle.frames)]
    ed, es = cycle.ed_frame, cycle.es_frame
    lv_edv, lv_esv = volumes[ed]["lv"], volumes[es]["lv"]
    rv_edv, rv_esv = volumes[ed]["rv"], volumes[es]["rv"]
    shape = subject.shape
    return {
        "pathology": shape.pathology,
        "ed_frame": ed,
        "es_frame": es,
        "frames": cycle.frames,
        "heart_rate_bpm": round(cycle.heart_rate, 2),
        "lv_edv_ml": lv_edv,
        "lv_esv_ml": lv_esv,
        "lv_ef": (lv_edv - lv_esv) / lv_edv,
        "rv_edv_ml": rv_edv,
        "rv_esv_ml": rv_esv,
        "rv_ef": (rv_edv - rv_esv) / rv_edv,
        "lv_mass_ed_g": MYOCARDIAL_DENSITY * volumes[ed]["myo"],
        "lv_mass_es_g": MYOCARDIAL_DENSITY * volumes[es]["myo"],
        "volumes_ml": {key: [v[key] for v in volumes] for key in ("lv", "myo", "rv")},
        "slice_positions": positions.tolist(),
        "base_descent_mm": shape.base_descent,
        "lv_length_mm": shape.lv_length,
        "apex_world_mm": heart.pose.apex.tolist(),
        "long_axis_world": heart.axis.tolist(),
        "rv_direction_world": heart.e1.tolist(),
        "blood_to_myocardium_signal": float(signals[Tissue.BLOOD] / signals[Tissue.MYOCARDIUM]),
        "acquisition": acq.as_dict(),
    }
