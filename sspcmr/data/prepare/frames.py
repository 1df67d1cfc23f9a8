"""End-diastolic (ED) and end-systolic (ES) frames, found from the data rather than trusted from CSVs."""

from __future__ import annotations

import numpy as np

from ..errors import DataError


def frames_from_labels(labels: np.ndarray, subject: str, file: str) -> tuple[int, int]:
    """M&Ms: the two annotated frames of a 4D label map; the one with more labelled voxels is ED.

    Args:
        labels: (X, Y, Z, T) label map, non-zero in exactly two frames.
    """
    counts = np.count_nonzero(labels.reshape(-1, labels.shape[-1]), axis=0)
    annotated = np.flatnonzero(counts)
    if annotated.size != 2:
        raise DataError(f"labels annotate {annotated.size} frames {annotated.tolist()}, expected exactly 2 (ED, ES)",
                        subject, file)
    first, second = (int(t) for t in annotated)
    if counts[first] == counts[second]:
        raise DataError(f"frames {first} and {second} have equal labelled volume; cannot tell ED from ES",
                        subject, file)
    return (first, second) if counts[first] > counts[second] else (second, first)


def frame_by_match(cine: np.ndarray, frame: np.ndarray, subject: str, file: str) -> int:
    """M&Ms-2: the first cine frame equal, voxel for voxel, to a separately stored ED or ES volume.

    Unlike the reference (a signed sum that can match a wrong frame, and a silent ``None`` when
    nothing matches), the arrays must be identical, and no match is an error.

    Args:
        cine: (X, Y, Z, T) cine.
        frame: (X, Y, Z) volume.
    """
    if frame.shape != cine.shape[:3]:
        raise DataError(f"shape {frame.shape} differs from the cine's {cine.shape[:3]}", subject, file)
    for t in range(cine.shape[-1]):
        if np.array_equal(cine[..., t], frame):
            return t
    closest = min(range(cine.shape[-1]), key=lambda t: float(np.abs(cine[..., t].astype(np.float64) - frame).max()))
    diff = float(np.abs(cine[..., closest].astype(np.float64) - frame).max())
    raise DataError(f"matches no frame of the cine (closest: frame {closest}, max abs difference {diff:g})",
                    subject, file)


def check_csv_frames(row: dict, n_frames: int, subject: str, file: str) -> tuple[int | None, int | None]:
    """ED / ES from a metadata row, checked to be integers inside the cine; None where absent.

    Equal values (the M&Ms CSV lists ED = ES = 0 for 25 subjects) are returned as they are: the
    caller replaces them by the frames found in the labels and reports the correction.
    """
    values = []
    for key in ("ED", "ES"):
        raw = row.get(key)
        if raw in (None, ""):
            values.append(None)
            continue
        try:
            value = int(float(raw))
        except ValueError:
            raise DataError(f"{key} = {raw!r} in the metadata CSV is not a frame index", subject, file) from None
        if not 0 <= value < n_frames:
            raise DataError(f"{key} = {value} in the metadata CSV is outside the cine's {n_frames} frames (0-based)",
                            subject, file)
        values.append(value)
    return values[0], values[1]


def check_labels(labels: np.ndarray, subject: str, file: str) -> np.ndarray:
    """Label values must be integers 0-3 (background, LV, MYO, RV); returns them as uint8."""
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
        raise DataError("label map has non-integer values", subject, file)
    values = np.unique(labels)
    bad = values[(values < 0) | (values > 3)]
    if bad.size:
        raise DataError(f"label values {bad[:5].tolist()} outside 0-3 (0 background, 1 LV, 2 MYO, 3 RV)",
                        subject, file)
    return labels.astype(np.uint8)
