"""Checked NIfTI reading: every way a file can be unusable becomes a one-line :class:`DataError`.

A header is checked before any voxel is read, because it can claim any amount of data: a 100-byte
file whose header says 16000 x 16000 x 2 x 2 would otherwise make nibabel allocate 2 GB before it
notices the data is not there. The claim must fit the bounds below, the file (uncompressed size,
or the gzip trailer's size field, confirmed by counting when in doubt) and the machine's memory.

Machine failures while reading (permission denied, I/O error, ...) are not the file's fault: they
raise :class:`MachineError` so the run aborts instead of marking the subject invalid.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from stat import S_ISREG

import nibabel as nib
import numpy as np

from ..errors import DataError, MachineError, is_machine_failure

# Bounds on what a header may claim, generous but finite. Real M&Ms / M&Ms-2 short-axis cines are
# at most ~512 pixels per in-plane side, ~25 slices and ~40 frames (typically 256 x 256 x 13 x 25,
# about 40 MB as int16); a file beyond these bounds is not a cardiac cine, whatever its header says.
MAX_INPLANE = 2048  # pixels per in-plane side (dimensions 1 and 2): 4x the largest real acquisition
MAX_SLICES = 512  # dimension 3: 20x the largest real short-axis stack
MAX_FRAMES = 512  # dimension 4 (and any further dimension): 12x the longest real cine
MAX_VOXELS = 2**29  # ~5.4e8 voxels: twice an extreme 512 x 512 x 25 x 40 cine, 20x a typical one
MAX_DECODED_BYTES = 4 * 2**30  # raw voxels plus the float32 copy when the header scales them
MEMORY_FRACTION = 0.5  # refuse a file whose decoded voxels would take more than this share of free memory
_DIM_BOUNDS = (("in-plane", MAX_INPLANE), ("in-plane", MAX_INPLANE), ("slice", MAX_SLICES), ("frame", MAX_FRAMES))
_GZIP_CHUNK = 1 << 20

# What nibabel, gzip and zlib raise for a file that is not a readable NIfTI. An OSError with a
# machine errno (see is_machine_failure) is told apart before these are turned into data errors.
_READ_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile, nib.filebasedimages.ImageFileError, ValueError,
                nib.spatialimages.HeaderDataError)


def load_nifti(path: Path, subject: str, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Load a NIfTI file fully (scaling applied) and check it.

    Args:
        path: the ``.nii`` / ``.nii.gz`` file.
        subject: ``"<dataset> <ID>"`` for error messages.
        ndim: expected number of dimensions (4 for cines, 3 for single frames).

    Returns:
        ``(array, affine)``: the scaled voxel array (integer dtype kept when the file has no
        scaling, float32 otherwise) and the 4x4 voxel-to-world affine (sform if set, else qform).

    Raises:
        DataError: missing, truncated or corrupt file; a header claiming more data than the file
            holds or than a cardiac cine can have (see the ``MAX_*`` bounds); wrong number of
            dimensions; NaN or Inf voxels; singular affine.
        MachineError: the machine failed while reading (permission denied, I/O error, ...), or a
            plausible file does not fit in the memory available now.
    """
    size = _file_size(path, subject)
    claim = None
    try:
        image = nib.load(str(path))
        claim = _Claim(image)
        claim.check(path, subject, size)
        array = _read_array(image)
    except DataError:
        raise
    except MemoryError as error:
        # Within the bounds above, running out of memory is the machine's failure, not the file's: abort the
        # run rather than call a valid subject invalid.
        what = f"header claims {claim}; out of memory" if claim is not None else "out of memory"
        raise MachineError("reading", path, MemoryError(what)) from error
    except _READ_ERRORS as error:
        _raise_read_error(error, path, subject, "cannot read NIfTI (truncated or corrupt file: {})")
    if array.ndim == ndim + 1 and array.shape[-1] == 1:
        array = array[..., 0]  # a trailing singleton dimension carries no data
    if array.ndim != ndim:
        kind = {3: "3D volume", 4: "4D cine (x, y, slice, time)"}[ndim]
        raise DataError(f"expected a {kind}, found {array.ndim}D data of shape {array.shape}", subject, path)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        count = int((~np.isfinite(array)).sum())
        raise DataError(f"{count} NaN or Inf voxels", subject, path)
    affine = np.asarray(image.affine, dtype=np.float64)
    check_affine(affine, subject, path)
    return array, affine


def check_affine(affine: np.ndarray, subject: str, path: Path) -> None:
    """Refuse an affine that cannot place the voxels in the world (orientation and spacing come from it).

    Args:
        affine: the 4x4 voxel-to-world affine.
        subject: ``"<dataset> <ID>"`` for error messages.
        path: the file it comes from, for error messages.

    Raises:
        DataError: a singular or non-finite affine.
    """
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        raise DataError("singular or non-finite voxel-to-world affine", subject, path)


def _file_size(path: Path, subject: str) -> int:
    """Size of a regular file; missing -> DataError, the machine failing -> MachineError."""
    try:
        stat = path.stat()
    except OSError as error:
        if is_machine_failure(error):
            raise MachineError("reading", path, error) from error
        raise DataError("file is missing", subject, path) from None
    if not S_ISREG(stat.st_mode):
        raise DataError("file is missing", subject, path)
    return stat.st_size


def _raise_read_error(error: BaseException, path: Path, subject: str, template: str):
    """Re-raise a reading error: a machine failure as MachineError, anything else as a DataError."""
    if is_machine_failure(error):
        raise MachineError("reading", path, error) from error
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    raise DataError(template.format(reason), subject, path) from None


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.3g} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.3g} MiB"


class _Claim:
    """What a header says the file holds: shape, stored dtype, data offset, and what reading it costs."""

    def __init__(self, image: nib.Nifti1Image) -> None:
        header = image.header
        self.shape = tuple(int(s) for s in header.get_data_shape())
        self.dtype = np.dtype(image.get_data_dtype())
        # Where nibabel reads the voxels from (the header's vox_offset, after any extensions).
        self.offset = int(getattr(image.dataobj, "offset", 0) or 0)
        self.scaled = not _keeps_integers(image)
        self.voxels = math.prod(max(s, 0) for s in self.shape)
        self.data_bytes = self.voxels * self.dtype.itemsize  # on disk, after the offset
        # Reading holds the stored voxels and, when they are scaled, their float32 copy.
        self.memory = self.data_bytes + (self.voxels * 4 if self.scaled else 0)

    def __str__(self) -> str:
        shape = " x ".join(str(s) for s in self.shape) or "no"
        return f"{shape} {self.dtype.name} voxels ({_gib(self.memory)} to decode)"

    def check(self, path: Path, subject: str, size: int) -> None:
        """Refuse, before reading any voxel, a claim that cannot be true of a cardiac cine or this file."""
        def refuse(problem: str) -> None:
            raise DataError(f"header claims {self}: {problem}", subject, path)

        if any(s < 0 for s in self.shape):
            refuse("negative dimension")
        for axis, extent in enumerate(self.shape):
            label, bound = _DIM_BOUNDS[axis] if axis < len(_DIM_BOUNDS) else ("dimension", MAX_FRAMES)
            if extent > bound:
                refuse(f"{label} size {extent} exceeds {bound}, far beyond any cardiac cine")
        if self.voxels > MAX_VOXELS:
            refuse(f"more than {MAX_VOXELS} voxels, far beyond any cardiac cine")
        if self.memory > MAX_DECODED_BYTES:
            refuse(f"more than {_gib(MAX_DECODED_BYTES)} to decode, far beyond any cardiac cine")
        needed = self.offset + self.data_bytes
        compressed = path.name.endswith(".gz")
        held = _gzip_holds(path, needed, size) if compressed else (None if needed <= size else size)
        if held is not None:
            raise DataError(f"cannot read NIfTI (truncated or corrupt file: the header claims {self}, {needed} "
                            f"bytes with the header, but the {'decompressed ' if compressed else ''}file holds "
                            f"{held})", subject, path)
        available = available_memory()
        if available is not None and self.memory > MEMORY_FRACTION * available:
            # A plausible cine this machine cannot hold now: the machine's limit, not a bad file.
            raise MachineError("reading", path, MemoryError(
                f"header claims {self}, more than {MEMORY_FRACTION:.0%} of the {_gib(available)} of memory "
                "available"))


def _gzip_holds(path: Path, needed: int, size: int) -> int | None:
    """None when the gzip file decompresses to at least ``needed`` bytes, else how many it holds.

    The trailer's ISIZE (the last 4 bytes) is the last member's uncompressed size mod 2**32. A
    whole stream is never smaller than that, so ``needed <= ISIZE`` settles it at once (every file
    written by nibabel). Otherwise (a truncated or lying header, but also a size over 4 GiB or a
    multi-member file) the stream is decompressed in chunks and counted, never held in memory, and
    only up to ``needed`` bytes: a file is refused only when it really holds less.
    """
    if size >= 18:  # a gzip header and trailer
        with path.open("rb") as handle:
            handle.seek(size - 4)
            if needed <= int.from_bytes(handle.read(4), "little"):
                return None
    count = 0
    with gzip.open(path, "rb") as stream:
        while count < needed:
            chunk = stream.read(min(_GZIP_CHUNK, needed - count))
            if not chunk:
                return count
            count += len(chunk)
    return None


def available_memory() -> int | None:
    """Bytes of memory this process could still get (Linux MemAvailable, cgroup limit), or None if unknown."""
    available = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = None
    try:  # a container's cgroup (v2) limit
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            room = max(int(limit) - used, 0)
            available = room if available is None else min(available, room)
    except (OSError, ValueError):
        pass
    return available if available is None or available > 0 else None


def _keeps_integers(image: nib.Nifti1Image) -> bool:
    """True when the stored voxels are integers and the header does not scale them."""
    slope, inter = image.dataobj.slope, image.dataobj.inter
    unscaled = (slope in (1.0, None) or np.isnan(slope)) and (inter in (0.0, None) or np.isnan(inter))
    return image.get_data_dtype().kind in "iu" and unscaled


def _read_array(image: nib.Nifti1Image) -> np.ndarray:
    """Voxel data with scaling applied; integers stay integers when the header does not scale."""
    if _keeps_integers(image):
        return np.asarray(image.dataobj.get_unscaled())
    return np.asarray(image.dataobj, dtype=np.float32)


def read_header_geometry(path: Path, subject: str) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and affine of a NIfTI file without reading its voxels (long-axis geometry).

    Raises:
        DataError: missing file or unreadable header.
        MachineError: the machine failed while reading.
    """
    _file_size(path, subject)
    try:
        image = nib.load(str(path))
        return tuple(int(s) for s in image.shape), np.asarray(image.affine, dtype=np.float64)
    except MemoryError as error:
        raise MachineError("reading", path, MemoryError("out of memory reading the NIfTI header")) from error
    except _READ_ERRORS as error:
        _raise_read_error(error, path, subject, "cannot read NIfTI header ({})")
