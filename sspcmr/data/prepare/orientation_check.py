"""``sspcmr orientation-check``: per subject, where sspcmr's anatomical orientation rule and the reference's
header heuristics (:mod:`sspcmr.data.preprocessing.reference_orientation`) put a stack in different order.

Both rules look only at the 3 x 3 part of the cine's voxel-to-world affine: the border crop moves the origin,
never the axes, so ``sspcmr prepare`` would choose the same axis swap and flips from the header alone. The check
therefore reads the short-axis cine headers, never a voxel, and writes nothing under the raw folder; the
optional CSV is written atomically (:mod:`sspcmr.data.atomic`).

Per subject it reports the axis codes each rule leaves (nibabel's, e.g. ``PLI``), whether the slice order
agrees (``same``) or is ``reversed``, and how the reference's in-plane image relates to the anatomical one
(:data:`IN_PLANE`: ``same``, ``rotated 180``, ``rotated 90 clockwise``, ``transposed``, ...; as displayed with
array axis 0 running down the rows and axis 1 along the columns).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..atomic import atomic_write_bytes
from ..errors import DataError
from ..preprocessing.orientation import Reorientation
from ..preprocessing.reference_orientation import ANATOMICAL, REFERENCE, axis_codes, reorientation_by_rule
from .failures import machine_failures
from .nifti import check_affine, read_header_geometry
from .sources import RawSubject, dataset_names, find_subjects

# The reference's in-plane axes in terms of the anatomical ones, M with r_k = sum_j a_j M[j, k], flattened
# row-major, and what the reference's image is, as displayed, relative to the anatomical one.
IN_PLANE = {
    (1, 0, 0, 1): "same",
    (-1, 0, 0, -1): "rotated 180",
    (0, -1, 1, 0): "rotated 90 clockwise",
    (0, 1, -1, 0): "rotated 90 counterclockwise",
    (-1, 0, 0, 1): "flipped upside down",
    (1, 0, 0, -1): "mirrored left-right",
    (0, 1, 1, 0): "transposed",
    (0, -1, -1, 0): "anti-transposed",
}
COLUMNS = ["dataset", "subject", "vendor", "vendor_name", "anatomical", "reference", "slice_order", "in_plane",
           "agree", "cine"]


@dataclass(frozen=True)
class RuleComparison:
    """One subject: the axis codes each rule leaves and how the two results relate.

    Attributes:
        dataset, subject, vendor, vendor_name: as in the prepared subject table.
        anatomical, reference: nibabel axis codes of the stack after each rule (e.g. ``"PLI"``).
        slice_order: ``same`` or ``reversed`` (which slice is 0, base or apex, differs between the rules).
        in_plane: the reference's in-plane image relative to the anatomical one (:data:`IN_PLANE`).
        cine: the header read.
    """

    dataset: str
    subject: str
    vendor: str
    vendor_name: str
    anatomical: str
    reference: str
    slice_order: str
    in_plane: str
    cine: str

    @property
    def agree(self) -> bool:
        return self.slice_order == "same" and self.in_plane == "same"


@dataclass
class OrientationCheck:
    """What a check found: one comparison per subject, and the metadata problems of subjects not checked."""

    rows: list[RuleComparison] = field(default_factory=list)
    skipped: list[DataError] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """One row per subject, :data:`COLUMNS`."""
        return pd.DataFrame([{**asdict(row), "agree": row.agree} for row in self.rows], columns=COLUMNS)


def _signed_permutation(ops: Reorientation) -> np.ndarray:
    """P with new in-plane axis k = sum_j original axis j * P[j, k]."""
    order = (1, 0) if ops.swap_inplane else (0, 1)
    matrix = np.zeros((2, 2), dtype=int)
    for new, old in enumerate(order):
        matrix[old, new] = -1 if ops.flip[new] else 1
    return matrix


def in_plane_relation(anatomical: Reorientation, reference: Reorientation) -> str:
    """How the reference's in-plane image relates to the anatomical one, as displayed (:data:`IN_PLANE`)."""
    relation = _signed_permutation(anatomical).T @ _signed_permutation(reference)
    return IN_PLANE[tuple(int(v) for v in relation.ravel())]


def compare_rules(affine: np.ndarray, dataset: str) -> tuple[str, str, str, str]:
    """``(anatomical codes, reference codes, slice order, in-plane relation)`` of a stack with this affine."""
    anatomical = reorientation_by_rule(ANATOMICAL, affine, dataset)
    reference = reorientation_by_rule(REFERENCE, affine, dataset)
    order = "same" if anatomical.flip[2] == reference.flip[2] else "reversed"
    return (axis_codes(affine, anatomical), axis_codes(affine, reference), order,
            in_plane_relation(anatomical, reference))


def compare_subject(subject: RawSubject) -> RuleComparison:
    """Compare the rules on one subject's cine header.

    Raises:
        DataError: a missing or unreadable cine, one with fewer than 3 dimensions, or a singular or
            non-finite affine (naming the file).
        MachineError: the machine failed while reading.
    """
    path = subject.files["cine"]
    shape, affine = read_header_geometry(path, subject.name)
    if len(shape) < 3:
        raise DataError(f"expected a short-axis stack (x, y, slice[, time]), found shape {shape}", subject.name, path)
    check_affine(affine, subject.name, path)
    codes = compare_rules(affine, subject.dataset)
    row = subject.row
    return RuleComparison(subject.dataset, subject.subject_id, str(row.get("Vendor", "")),
                          str(row.get("VendorName", "")), *codes, str(path))


def check_orientation(raw: str | Path, datasets: tuple[str, ...] | list[str] = ("mnms", "mnms2"),
                      progress: bool = True) -> OrientationCheck:
    """Compare the anatomical and the reference orientation rule on every subject's cine header.

    Args:
        raw: folder holding ``MnM/`` and/or ``MnM2/`` (or ``original_data/`` with them), as for ``prepare``.
        datasets: ``mnms`` and/or ``mnms2`` (``mm1`` / ``mm2`` accepted too).
        progress: show a progress bar.

    Raises:
        DataError: unknown data sets, a missing ``MnM/`` / ``MnM2/`` folder or metadata CSV, no subjects, or a
            cine whose header is unusable (naming the file). Metadata problems of single subjects (a CSV row
            without a folder, ...) do not stop the check: those subjects are listed in ``skipped``.
        MachineError: the machine failed while reading.
    """
    raw = Path(raw)
    names = dataset_names(datasets)
    with machine_failures("reading", raw, "nothing was written"):
        subjects, problems = find_subjects(raw, names)
    if not subjects:
        raise DataError(f"no {'/'.join(names)} subjects to check under {raw}"
                        + (f" ({len(problems)} metadata problem(s): {problems[0]})" if problems else ""))
    check = OrientationCheck(skipped=problems)
    for subject in tqdm(subjects, desc="orientation-check", unit="subject", disable=not progress):
        check.rows.append(compare_subject(subject))
    return check


def check_report_path(path: str | Path, raw: str | Path) -> None:
    """Refuse a report path inside the raw folder (raw data is never changed); checked before any reading."""
    path, raw = Path(path), Path(raw)
    if raw.resolve() in path.resolve().parents:
        raise DataError(f"the report {path} must lie outside the raw folder {raw} (raw data is never changed)")


def write_check(check: OrientationCheck, path: str | Path, raw: str | Path) -> None:
    """Write ``check``'s table to ``path`` atomically (never inside the raw folder ``raw``)."""
    check_report_path(path, raw)
    path = Path(path)
    data = check.table().to_csv(index=False).encode()
    with machine_failures("writing", path, "no report was written"):
        atomic_write_bytes(path, lambda tmp: tmp.write_bytes(data))


def format_check(check: OrientationCheck, out: str | Path | None = None) -> str:
    """Counts per data set and vendor: subjects, reversed slice orders and each in-plane relation found."""
    table = check.table()
    groups = table.groupby(["dataset", "vendor"])
    summary = groups.agg(subjects=("subject", "size"))
    summary["slice order reversed"] = groups["slice_order"].agg(lambda s: int((s != "same").sum()))
    summary["in-plane: reference vs anatomical"] = groups["in_plane"].agg(
        lambda s: ", ".join(f"{name} {count}" for name, count in s.value_counts().sort_index().items()))
    n, agree = len(table), int(table["agree"].sum())
    same_order, same_plane = int((table["slice_order"] == "same").sum()), int((table["in_plane"] == "same").sum())
    lines = [f"orientation-check of {n} subject(s), cine headers only" + (f" -> {out}" if out else ""),
             summary.to_string(),
             f"total: slice order agrees in {same_order}/{n}, in-plane orientation in {same_plane}/{n}, "
             f"both in {agree}/{n}"]
    if check.skipped:
        lines.append(f"not checked, {len(check.skipped)} subject(s) with metadata problems:")
        lines += [f"  {problem}" for problem in check.skipped]
    return "\n".join(lines)
