"""Batch dictionary keys, defined once.

Every dataset in :mod:`sspcmr.data` yields dicts with these keys and every transform, method and
metric reads them through these constants, never through ad-hoc strings.

Native-slice keys (what the data loader delivers, collated and zero-padded to the batch's largest
slice; shapes for a batch of B slices padded to Hc x Wc):

* ``IMAGE``: (B, 1, Hc, Wc) float32, intensities with the subject minimum subtracted (so the zero
  padding equals the subject minimum, as in the reference's zero-padded resampling);
* ``LABEL``: (B, 1, Hc, Wc) int64 label map 0-3 (``segment`` mode only);
* ``SIZE``: (B, 2) int64, the native slice size (dim0, dim1) before padding;
* ``SPACING``: (B, 2) float32, in-plane pixel spacing in mm (dim0, dim1);
* ``CENTER``: (B, 2) float32, the ground-truth centre (smallest circle enclosing every labelled
  pixel of the subject) in pixel-index units (dim0, dim1);
* ``MEAN`` / ``STD`` / ``MAX``: (B,) float32 subject statistics of the whole 4D cine after the
  minimum shift (unbiased standard deviation);
* ``POSITION``: (B,) float32 relative slice position ``slice / n_slices`` (base 0);
* ``LOCATION``: (B,) float32 relative slice location from the geometry, distance from the first plane
  over the stack's extent, in [0, 1] (Zhang et al.; :mod:`sspcmr.data.slice_geometry`);
* ``SLICE`` / ``N_SLICES`` / ``FRAME`` / ``FRAME_FROM_ED`` / ``N_FRAMES``: (B,) int64;
* ``IS_ED`` / ``IS_ES``: (B,) bool;
* ``DATASET`` / ``SUBJECT`` / ``VENDOR`` / ``PATHOLOGY``: lists of B strings;
* ``SUBJECT_INDEX``: (B,) int64 row of the subject in the prepared subject table;
* ``LA_LINES``: (B, K, 3) float32, K = 2 in the order ("2ch", "4ch"): the lines (A, B, C),
  A h + B w + C = 0 with A^2 + B^2 = 1, where the two- and four-chamber long-axis planes cut the slice,
  in native prepared pixel indices (h along dim0, w along dim1; :mod:`sspcmr.data.long_axis`); zeros
  where not valid;
* ``LA_VALID``: (B, K) bool, whether that line exists: False for a subject without that long-axis view
  (every M&Ms subject) or a plane parallel to the slice;
* ``PADDED``: (B, 2) int64, the zero-padded canvas (Hc, Wc) of the batch, the same on every row (written
  by ``collate_slices``; ``THETA`` refers to it, and it survives the augmentation, which drops the native
  ``IMAGE``).

Augmented keys (written by :mod:`sspcmr.transforms` on the device):

* ``VIEWS``: list of V tensors (B, 1, S_v, S_v), one per view (two for SimCLR/PCL, 2 global +
  6 local for DINO); a single-view pipeline writes ``IMAGE`` instead and keeps ``VIEWS`` unset;
* ``IMAGE`` / ``LABEL`` after augmentation: (B, 1, S, S) float32 standardised image and
  (B, 4, S, S) float32 one-hot label;
* ``THETA``: (B, 2, 3) float32, the ``affine_grid`` matrix that mapped output to the padded input
  (for inverse resampling of predictions).
"""

IMAGE = "image"
LABEL = "label"
SIZE = "size"
SPACING = "spacing"
CENTER = "center"
MEAN = "mean"
STD = "std"
MAX = "max"
POSITION = "position"
LOCATION = "location"
SLICE = "slice"
N_SLICES = "n_slices"
FRAME = "frame"
FRAME_FROM_ED = "frame_from_ed"
N_FRAMES = "n_frames"
IS_ED = "is_ed"
IS_ES = "is_es"
DATASET = "dataset"
SUBJECT = "subject"
VENDOR = "vendor"
PATHOLOGY = "pathology"
SUBJECT_INDEX = "subject_index"
VIEWS = "views"
THETA = "theta"
LA_LINES = "la_lines"
LA_VALID = "la_valid"
PADDED = "padded"

# Volume items (``VolumeDataset``; one item is the batch of a volume's Z slices):
PHASE = "phase"  # "ED" or "ES"
AFFINE = "affine"  # (4, 4) float64 voxel -> world of the prepared (H, W, Z) array
VOXEL_SPACING = "voxel_spacing"  # (3,) float64 mm for the (Z, H, W) volume: slice, dim0, dim1
NATIVE_LABEL = "native_label"  # (Z, 1, Hc, Wc) int64 labels kept on the native grid for evaluation
