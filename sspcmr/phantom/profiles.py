"""Vendor / centre acquisition profiles and dataset size presets for the phantom.

A vendor profile changes several things at once, as real multi-vendor data do (see
``docs/synthetic-data.md``): matrix, pixel spacing, slice thickness and gap, frame count, field
strength and flip angle (hence tissue contrast), SNR, coil-bias strength and whether the vendor's
intensity-normalisation filter flattened it, k-space coverage and filtering (blur vs ringing), the
intensity range, on-disk dtype and scaling, a global gamma curve, and the NIfTI orientation
convention. Individual subjects draw their own values inside each range.

Profiles A-D stand in for the four M&Ms vendors (A Siemens, B Philips, C GE, D Canon); E is an
extra profile that no M&Ms or M&Ms-2 subject uses by default, for "unseen vendor" experiments.
The numbers are plausible ranges, not measurements of any scanner.
"""

from __future__ import annotations

from dataclasses import dataclass

from .sampling import Range


@dataclass(frozen=True)
class OrientationConvention:
    """How a vendor stores the short-axis stack on disk.

    The world geometry is always exact (the affine maps every voxel to its true position); the
    convention only decides the array layout, which is where real loaders break.

    Attributes:
        apex_first: slice index 0 is the most apical slice (otherwise the most basal).
        flip_x: reverse the first array axis.
        flip_y: reverse the second array axis.
        transpose: swap the two in-plane array axes.
        sform: write the affine as sform (code 1) as well as qform; ``False`` leaves
            ``sform_code = 0`` so readers must fall back to the qform.
    """

    apex_first: bool = False
    flip_x: bool = False
    flip_y: bool = False
    transpose: bool = False
    sform: bool = True


@dataclass(frozen=True)
class VendorProfile:
    """Acquisition and storage parameters of one synthetic vendor / centre family.

    Ranges are ``(low, high)`` and sampled uniformly per subject. ``breath_hold_sd`` is the range
    of the per-subject SD (mm) of the superior-inferior breath-hold offset between slices (times
    1.8-2.5 with ``poor_breath_hold_probability``); ``wrap_probability`` is the chance that phase
    oversampling is off (tissue beyond the phase field of view folds in); banding probabilities
    are per field strength.
    """

    code: str
    vendor_name: str
    mnms2_vendor: str
    scanners: tuple[str, ...]
    centres: tuple[int, ...]
    field_3t_probability: float
    pixel_spacing: Range
    matrix: tuple[int, int]
    non_square_probability: float
    slice_thickness: Range
    slice_gap: Range
    frames: tuple[int, int]
    flip_angle_1p5t: Range
    flip_angle_3t: Range
    snr_myocardium: Range
    bias_ratio: Range
    bias_normalised_probability: float
    kspace_fraction_phase: Range
    kspace_fraction_read: Range
    kspace_filter: Range
    gamma: Range
    intensity_max: Range
    dtype: str
    scl_slope: float | None
    label_dtype: str
    orientation: OrientationConvention
    breath_hold_sd: Range = (1.0, 3.0)
    poor_breath_hold_probability: float = 0.1
    wrap_probability: float = 0.15
    banding_probability_1p5t: float = 0.08
    banding_probability_3t: float = 0.3


VENDOR_PROFILES: dict[str, VendorProfile] = {
    "A": VendorProfile(
        code="A", vendor_name="Siemens", mnms2_vendor="SIEMENS",
        scanners=("Avanto", "Aera", "Skyra"), centres=(1, 6), field_3t_probability=0.15,
        pixel_spacing=(1.20, 1.45), matrix=(192, 232), non_square_probability=0.2,
        slice_thickness=(8.0, 10.0), slice_gap=(0.0, 2.0), frames=(22, 30),
        flip_angle_1p5t=(55.0, 70.0), flip_angle_3t=(40.0, 50.0),
        snr_myocardium=(20.0, 35.0), bias_ratio=(1.3, 1.8), bias_normalised_probability=0.5,
        kspace_fraction_phase=(0.75, 0.9), kspace_fraction_read=(0.9, 1.0), kspace_filter=(0.2, 0.4),
        gamma=(0.9, 1.1), intensity_max=(400.0, 900.0), dtype="int16", scl_slope=None,
        label_dtype="uint8", orientation=OrientationConvention(),
        breath_hold_sd=(0.8, 2.0), wrap_probability=0.10,
    ),
    "B": VendorProfile(
        code="B", vendor_name="Philips", mnms2_vendor="Philips Medical Systems",
        scanners=("Achieva", "Ingenia"), centres=(2, 3), field_3t_probability=0.3,
        pixel_spacing=(1.10, 1.30), matrix=(208, 248), non_square_probability=0.0,
        slice_thickness=(8.0, 10.0), slice_gap=(0.0, 2.0), frames=(28, 35),
        flip_angle_1p5t=(55.0, 65.0), flip_angle_3t=(40.0, 45.0),
        snr_myocardium=(15.0, 30.0), bias_ratio=(1.6, 2.4), bias_normalised_probability=0.2,
        kspace_fraction_phase=(0.6, 0.75), kspace_fraction_read=(0.7, 0.85), kspace_filter=(0.5, 0.8),
        gamma=(0.85, 1.0), intensity_max=(2000.0, 4095.0), dtype="uint16", scl_slope=None,
        label_dtype="uint8",
        orientation=OrientationConvention(apex_first=True, flip_y=True),
        breath_hold_sd=(1.0, 2.5), wrap_probability=0.15,
    ),
    "C": VendorProfile(
        code="C", vendor_name="GE", mnms2_vendor="GE MEDICAL SYSTEMS",
        scanners=("Signa Explorer", "Signa HDxt"), centres=(4,), field_3t_probability=0.2,
        pixel_spacing=(1.35, 1.55), matrix=(192, 208), non_square_probability=0.3,
        slice_thickness=(7.0, 9.0), slice_gap=(1.0, 3.0), frames=(20, 25),
        flip_angle_1p5t=(45.0, 55.0), flip_angle_3t=(40.0, 50.0),
        snr_myocardium=(12.0, 25.0), bias_ratio=(1.2, 1.6), bias_normalised_probability=0.7,
        kspace_fraction_phase=(0.85, 1.0), kspace_fraction_read=(0.95, 1.0), kspace_filter=(0.0, 0.1),
        gamma=(1.0, 1.2), intensity_max=(250.0, 350.0), dtype="float32", scl_slope=None,
        label_dtype="float32",
        orientation=OrientationConvention(flip_x=True, flip_y=True, sform=False),
        breath_hold_sd=(1.2, 3.0), wrap_probability=0.20,
    ),
    "D": VendorProfile(
        code="D", vendor_name="Canon", mnms2_vendor="CANON",
        scanners=("Vantage Orian",), centres=(5,), field_3t_probability=0.0,
        pixel_spacing=(1.30, 1.55), matrix=(192, 208), non_square_probability=0.6,
        slice_thickness=(9.0, 10.0), slice_gap=(0.0, 1.0), frames=(20, 25),
        flip_angle_1p5t=(55.0, 65.0), flip_angle_3t=(40.0, 45.0),
        snr_myocardium=(15.0, 25.0), bias_ratio=(1.5, 2.0), bias_normalised_probability=0.3,
        kspace_fraction_phase=(0.7, 0.8), kspace_fraction_read=(0.85, 0.95), kspace_filter=(0.3, 0.5),
        gamma=(1.1, 1.3), intensity_max=(1000.0, 2000.0), dtype="int16", scl_slope=0.5,
        label_dtype="int16",
        orientation=OrientationConvention(apex_first=True, transpose=True),
        breath_hold_sd=(1.0, 2.5), wrap_probability=0.25,
    ),
    "E": VendorProfile(
        code="E", vendor_name="Unseen", mnms2_vendor="UNSEEN",
        scanners=("Research 3T",), centres=(7,), field_3t_probability=1.0,
        pixel_spacing=(0.95, 1.10), matrix=(256, 256), non_square_probability=0.0,
        slice_thickness=(6.0, 6.0), slice_gap=(3.0, 4.0), frames=(30, 35),
        flip_angle_1p5t=(50.0, 60.0), flip_angle_3t=(40.0, 50.0),
        snr_myocardium=(25.0, 40.0), bias_ratio=(2.0, 2.5), bias_normalised_probability=0.0,
        kspace_fraction_phase=(0.55, 0.65), kspace_fraction_read=(0.6, 0.7), kspace_filter=(0.0, 0.2),
        gamma=(0.7, 0.85), intensity_max=(1.0, 1.0), dtype="float32", scl_slope=None,
        label_dtype="uint8",
        orientation=OrientationConvention(flip_x=True, transpose=True),
        breath_hold_sd=(0.5, 1.5), wrap_probability=0.05, banding_probability_3t=0.4,
    ),
}

#: Vendors used by default per layout, as in the real data sets (M&Ms: A-D; M&Ms-2: Siemens,
#: Philips, GE).
DEFAULT_VENDORS: dict[str, tuple[str, ...]] = {"mnms": ("A", "B", "C", "D"), "mnms2": ("A", "B", "C")}


@dataclass(frozen=True)
class SizePreset:
    """Overrides that make a data set cheap enough for tests or realistic enough for study.

    Attributes:
        name: preset name.
        matrix: in-plane matrix range; ``None`` keeps the vendor's.
        field_of_view: physical in-plane field of view in mm used with ``matrix`` (the pixel
            spacing becomes FOV / matrix); ``None`` keeps the vendor's spacing.
        slices: allowed number of short-axis slices (the slice spacing adapts to cover the heart).
        frames: frame-count range; ``None`` keeps the vendor's.
        subslices: samples across the slice thickness for partial volume (odd, so one sits at the
            slice centre where labels are taken).
    """

    name: str
    matrix: tuple[int, int] | None
    field_of_view: Range | None
    slices: tuple[int, int]
    frames: tuple[int, int] | None
    subslices: int


SIZE_PRESETS: dict[str, SizePreset] = {
    "tiny": SizePreset("tiny", matrix=(64, 96), field_of_view=(200.0, 240.0), slices=(6, 8),
                       frames=(8, 12), subslices=3),
    "small": SizePreset("small", matrix=(112, 128), field_of_view=(220.0, 280.0), slices=(8, 10),
                        frames=(12, 20), subslices=3),
    "realistic": SizePreset("realistic", matrix=None, field_of_view=None, slices=(8, 14), frames=None,
                            subslices=5),
}
