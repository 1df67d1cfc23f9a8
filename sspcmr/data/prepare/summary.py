"""Text summary of a prepare run."""

from __future__ import annotations

from pathlib import Path

from ..store import PreparedDataset
from .run import PrepareReport


def format_prepare_report(report: PrepareReport, out: str | Path, seconds: float) -> str:
    """Counts of what was prepared, reused, corrected and left out, with per-vendor totals."""
    lines = [f"prepared {len(report.prepared)} subject(s), reused {len(report.reused)} unchanged, "
             f"in {seconds:.1f} s -> {out}"]
    prepared = PreparedDataset(out)
    subjects = prepared.subjects.copy()
    tables = prepared.tables.relative_to(Path(out))
    if len(subjects):
        subjects["cine slices"] = subjects["n_slices"] * subjects["n_frames"]
        table = subjects.groupby(["dataset", "Vendor"]).agg(
            subjects=("SubjectID", "size"), slices=("n_slices", "sum"), cine_slices=("cine slices", "sum"))
        lines.append(table.to_string())
    lines.append(f"total: {report.subjects} subjects, {report.slices} (slice, frame) images, "
                 f"{report.orientation} orientation")
    if report.corrections:
        lines.append(f"{len(report.corrections)} metadata correction(s) ({tables}/corrections.csv): "
                     + "; ".join(report.corrections[:3]) + (" ..." if len(report.corrections) > 3 else ""))
    if report.removed:
        lines.append(f"removed {len(report.removed)} subject(s) no longer valid or present: "
                     + ", ".join(report.removed))
    if report.repaired:
        lines.append(f"repaired {len(report.repaired)} damaged subject(s): "
                     + "; ".join(f"{name}: {report.damage.get(name, 'damaged')}" for name in report.repaired))
    if report.cleanup_error:
        lines.append(f"could not delete the previous generation ({report.cleanup_error}); the next run retries")
    if report.invalid:
        lines.append(f"skipped {len(report.invalid)} invalid subject(s), listed in {tables}/invalid.csv:")
        lines += [f"  {problem}" for problem in report.invalid]
    return "\n".join(lines)
