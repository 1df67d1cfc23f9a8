"""Per-subject acquisition parameters drawn from a vendor profile and a size preset."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .artefacts import sample_breath_hold
from .profiles import SizePreset, VendorProfile
from .sampling import uniform


@dataclass
class Acquisition:
    """Everything about how one subject was scanned and stored.

    Attributes:
        vendor: vendor profile code (A-E).
        scanner: scanner model name.
        centre: centre number.
        field: field strength in tesla.
        flip_angle: degrees.
        matrix: (nx, ny) in-plane matrix.
        pixel_spacing: in-plane spacing in mm.
        slice_thickness: mm.
        nominal_slice_spacing: thickness + gap before adapting the stack to the heart, mm.
        slices: number of short-axis slices.
        frames: number of cine frames.
        subslices: sub-slices per slice for partial volume.
        snr: myocardial SNR (myocardium signal / noise standard deviation at bias 1).
        bias_ratio: max/min coil-bias ratio inside the body.
        kspace_read: acquired fraction of k-space along the first axis.
        kspace_phase: acquired fraction of k-space along the second axis.
        kspace_filter: Hann-window weight applied to the acquired k-space (0 sharp, 1 smooth).
        gamma: global contrast curve exponent applied before quantisation.
        intensity_max: value the brightest tissue is mapped to on disk.
        in_plane_angle: rotation of the image axes about the slice normal, radians.
        breath_hold: (slices, 3) per-slice rigid scene shifts in world mm (x left-right, y
            anterior-posterior, z superior-inferior; see :mod:`.artefacts`).
        breath_hold_sd: the subject's SD (mm) of the superior-inferior breath-hold offset.
        wrap: phase oversampling off: tissue beyond the phase field of view folds in.
        wrap_pad: width (mm) beyond each phase edge whose tissue can fold in (0 without wrap).
        banding: off-resonance banding present.
        band_scale: band radius relative to the smallest heart-safe one.
        band_depth: attenuation at a band centre.
        band_width: band half-width in radians of off-resonance phase.
    """

    vendor: str
    scanner: str
    centre: int
    field: float
    flip_angle: float
    matrix: tuple[int, int]
    pixel_spacing: float
    slice_thickness: float
    nominal_slice_spacing: float
    slices: int
    frames: int
    subslices: int
    snr: float
    bias_ratio: float
    kspace_read: float
    kspace_phase: float
    kspace_filter: float
    gamma: float
    intensity_max: float
    in_plane_angle: float
    breath_hold: np.ndarray
    breath_hold_sd: float = 0.0
    wrap: bool = False
    wrap_pad: float = 0.0
    banding: bool = False
    band_scale: float = 1.0
    band_depth: float = 0.0
    band_width: float = 0.3

    def as_dict(self) -> dict:
        """JSON-friendly dictionary of the parameters."""
        out = asdict(self)
        out["breath_hold"] = np.round(self.breath_hold, 3).tolist()
        out["matrix"] = list(self.matrix)
        return out


#: Breath-hold offsets are drawn for this many slices and cut to the planned stack.
MAX_SLICES = 32


def sample_acquisition(rng: np.random.Generator, vendor: VendorProfile, size: SizePreset) -> Acquisition:
    """Draw acquisition parameters for one subject.

    The number of slices is provisional here (the vendor's nominal spacing over a typical heart);
    :func:`~.subject.plan_stack` adapts spacing and count to the subject's heart so that the stack
    covers 1-2 slices above the base to 0-2 beyond the apex within the preset's slice range.
    """
    field = 3.0 if rng.random() < vendor.field_3t_probability else 1.5
    flip = uniform(rng, vendor.flip_angle_3t if field == 3.0 else vendor.flip_angle_1p5t)
    nx, ny, pixel = _sample_matrix(rng, vendor, size)
    frames_range = size.frames or vendor.frames
    frames = int(rng.integers(frames_range[0], frames_range[1] + 1))
    thickness = uniform(rng, vendor.slice_thickness)
    gap = uniform(rng, vendor.slice_gap)
    bias = uniform(rng, vendor.bias_ratio)
    if rng.random() < vendor.bias_normalised_probability:
        bias = 1.0 + (bias - 1.0) * rng.uniform(0.2, 0.4)
    slices = int(rng.integers(size.slices[0], size.slices[1] + 1))
    artefacts = _sample_artefacts(rng, vendor, field)
    return Acquisition(
        vendor=vendor.code,
        scanner=str(rng.choice(vendor.scanners)),
        centre=int(rng.choice(vendor.centres)),
        field=field,
        flip_angle=flip,
        matrix=(nx, ny),
        pixel_spacing=pixel,
        slice_thickness=thickness,
        nominal_slice_spacing=thickness + gap,
        slices=slices,
        frames=frames,
        subslices=size.subslices,
        snr=uniform(rng, vendor.snr_myocardium),
        bias_ratio=bias,
        kspace_read=uniform(rng, vendor.kspace_fraction_read),
        kspace_phase=uniform(rng, vendor.kspace_fraction_phase),
        kspace_filter=uniform(rng, vendor.kspace_filter),
        gamma=uniform(rng, vendor.gamma),
        intensity_max=uniform(rng, (0.8 * vendor.intensity_max[0], vendor.intensity_max[1])),
        in_plane_angle=float(rng.uniform(-np.pi / 6, np.pi / 6)),
        **artefacts,
    )


def _sample_matrix(rng: np.random.Generator, vendor: VendorProfile, size: SizePreset) -> tuple[int, int, float]:
    """In-plane matrix ``(nx, ny)`` (multiples of 8) and pixel spacing (mm): the vendor's, or the size
    preset's matrix over its field of view."""
    if size.matrix is None:
        nx = int(rng.integers(vendor.matrix[0] // 8, vendor.matrix[1] // 8 + 1) * 8)
        pixel = uniform(rng, vendor.pixel_spacing)
    else:
        nx = int(rng.integers(size.matrix[0] // 8, size.matrix[1] // 8 + 1) * 8)
        pixel = uniform(rng, size.field_of_view) / nx
    ny = nx
    if rng.random() < vendor.non_square_probability:
        ny = int(round(nx * rng.uniform(0.78, 0.92) / 8) * 8)
    return nx, ny, pixel


def _sample_artefacts(rng: np.random.Generator, vendor: VendorProfile, field: float) -> dict:
    """Breath-hold offsets, wrap-around and banding as :class:`Acquisition` keyword arguments."""
    breath_hold, breath_hold_sd = sample_breath_hold(rng, vendor.breath_hold_sd,
                                                     vendor.poor_breath_hold_probability, MAX_SLICES)
    # Artefact parameters are always drawn (so switching an artefact off leaves every other draw
    # unchanged) and zeroed when the artefact is absent.
    wrap = bool(rng.random() < vendor.wrap_probability)
    wrap_pad = uniform(rng, (25.0, 70.0))
    band_probability = vendor.banding_probability_3t if field == 3.0 else vendor.banding_probability_1p5t
    banding = bool(rng.random() < band_probability)
    band = (uniform(rng, (1.0, 1.5)), uniform(rng, (0.6, 0.95)), uniform(rng, (0.2, 0.4)))
    return {
        "breath_hold": breath_hold,
        "breath_hold_sd": breath_hold_sd,
        "wrap": wrap,
        "wrap_pad": wrap_pad if wrap else 0.0,
        "banding": banding,
        "band_scale": band[0] if banding else 1.0,
        "band_depth": band[1] if banding else 0.0,
        "band_width": band[2] if banding else 0.3,
    }
