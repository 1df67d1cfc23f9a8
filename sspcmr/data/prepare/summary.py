"""Text summary of a prepare run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .run import PrepareReport


def format_prepare_report(report: PrepareReport, out: str | Path, seconds: float) -> str:
    """Counts of what was prepared, reused, corrected and left out, with per-vendor totals."""
    lines = [f"prepared {len(report.prepared)} subject(s), reused {len(report.reused)} unchanged, "
             f"in {seconds:.1f} s -> {out}"]
    subjects = pd.read_csv(Path(out) / "subjects.csv", dtype={"SubjectID": str})
    if len(subjects):
        subjects["cine slices"] = subjects["n_slices"] * subjects["n_frames"]
        table = subjects.groupby(["dataset", "Vendor"]).agg(
            subjects=("SubjectID", "size"), slices=("n_slices", "sum"), cine_slices=("cine slices", "sum"))
        lines.append(table.to_string())
    lines.append(f"total: {report.subjects} subjects, {report.slices} (slice, frame) images")
    if report.corrections:
        lines.append(f"{len(report.corrections)} metadata correction(s) (corrections.csv): "
                     + "; ".join(report.corrections[:3]) + (" ..." if len(report.corrections) > 3 else ""))
    if report.removed:
        lines.append(f"removed {len(report.removed)} subject(s) no longer valid or present: "
                     + ", ".join(report.removed))
    if report.invalid:
        lines.append(f"skipped {len(report.invalid)} invalid subject(s), listed in invalid.csv:")
        lines += [f"  {problem}" for problem in report.invalid]
    return "\n".join(lines)
