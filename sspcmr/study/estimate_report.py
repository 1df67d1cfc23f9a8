"""The text ``sspcmr study --estimate`` prints: the networks counted, one row per run, a summary per method, the
total with the wall-clock on N GPUs, and every assumption behind the numbers."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .estimate import StudyEstimate, estimate_study
from .gpus import GPUS
from .spec import StudyConfig

__all__ = ["format_estimate", "print_estimate"]


def _g(value: float) -> str:
    """Three significant digits, without exponent for everyday magnitudes."""
    return f"{value:.3g}" if value == 0 or 1e-3 <= abs(value) < 1e6 else f"{value:.2e}"


def _networks(estimate: StudyEstimate) -> pd.DataFrame:
    rows: dict[tuple, dict] = {}
    for e in estimate.runs:
        p = e.profile
        key = (p.method, p.flops.views, p.batch_size, p.val_batch_size, p.precision, p.flops)
        row = rows.setdefault(key, {
            "method": p.method, "views per slice": p.flops.views, "batch": p.batch_size,
            "precision": p.precision, "TFLOP/train step": _g(p.flops.train_per_batch / 1e12),
            "GFLOP/val slice": _g(p.flops.val_per_sample / 1e9), "counted on": p.flops.counted_on, "runs": 0})
        row["runs"] += 1
    return pd.DataFrame(list(rows.values()))


def _runs(estimate: StudyEstimate, gpus: Sequence[str], mfu: float) -> pd.DataFrame:
    rows = []
    for index, e in enumerate(estimate.runs):
        s = e.schedule
        row = {"#": index, "run": e.run.id, "method": e.profile.method, "precision": e.profile.precision,
               "slices": e.counts.train, "from": e.counts.source, "steps/epoch": s.steps_per_epoch,
               "epochs": s.epochs, "steps": s.steps, "val slices": s.val_slices,
               "TFLOP/step": _g(e.profile.flops.train_per_batch / 1e12), "PFLOP": _g(e.flops / 1e15),
               "val %": f"{100 * e.val_flops / e.flops:.0f}" if e.flops else "-"}
        row.update({f"GPU-h {gpu}": _g(e.gpu_hours(gpu, mfu)) for gpu in gpus})
        rows.append(row)
    return pd.DataFrame(rows)


def _methods(estimate: StudyEstimate, gpus: Sequence[str], mfu: float) -> pd.DataFrame:
    rows: dict[tuple, dict] = {}
    for e in estimate.runs:
        group = (e.run.kind, e.run.label)
        row = rows.setdefault(group, {"kind": group[0], "method": group[1], "runs": 0, "steps": 0, "flops": 0.0,
                                      **{gpu: 0.0 for gpu in gpus}})
        row["runs"] += 1
        row["steps"] += e.schedule.steps
        row["flops"] += e.flops
        for gpu in gpus:
            row[gpu] += e.gpu_hours(gpu, mfu)
    table = pd.DataFrame([{"kind": r["kind"], "method": r["method"], "runs": r["runs"], "steps": r["steps"],
                           "PFLOP": _g(r["flops"] / 1e15), **{f"GPU-h {gpu}": _g(r[gpu]) for gpu in gpus}}
                          for r in rows.values()])
    return table


def _total(estimate: StudyEstimate, gpus: Sequence[str], mfu: float, counts: Sequence[int]) -> pd.DataFrame:
    rows = []
    for gpu in gpus:
        hours = estimate.gpu_hours(gpu, mfu)
        row = {"GPU": GPUS[gpu].label, "GPU-hours": _g(hours)}
        row.update({f"wall-clock h, {n} GPU{'s' if n > 1 else ''}": _g(hours / n) for n in counts})
        row["critical path h"] = _g(estimate.critical_path_hours(gpu, mfu))
        rows.append(row)
    return pd.DataFrame(rows)


def format_estimate(estimate: StudyEstimate, gpus: Sequence[str], mfu: float, counts: Sequence[int]) -> str:
    """The whole report as text."""
    study = estimate.study
    peaks = ", ".join(f"{GPUS[g].label} {GPUS[g].half:g} (16-bit) / {GPUS[g].tf32 or GPUS[g].fp32:g} "
                      f"({'TF32' if GPUS[g].tf32 else 'FP32'}) TFLOP/s" for g in gpus)
    parts = [
        f"Estimate of study {study.name} ({len(estimate.runs)} runs) before launching: FLOPs counted on each run's "
        f"module, GPU-hours at MFU {mfu:g} of peak datasheet throughput ({peaks}). Estimates, not measurements.",
        "Networks counted (one training step: forward + backward; validation: forward per slice):",
        _networks(estimate).to_string(index=False),
        "Runs (slices: training slices per epoch; val %: share of the run's FLOPs spent validating):",
        _runs(estimate, gpus, mfu).to_string(index=False),
        "Per method:",
        _methods(estimate, gpus, mfu).to_string(index=False),
        f"Total: {len(estimate.runs)} runs, {_g(estimate.flops / 1e15)} PFLOP; wall-clock = GPU-hours / N "
        "(independent runs, packed):",
        _total(estimate, gpus, mfu, counts).to_string(index=False),
        "Assumptions:\n" + "\n".join(f"  - {note}" for note in estimate.notes),
    ]
    return "\n\n".join(parts)


def print_estimate(study: StudyConfig, gpus: Sequence[str] | None = None, mfu: float = 0.3,
                   counts: Sequence[int] | None = None, slices_per_epoch: list[tuple[str, int]] | None = None) -> int:
    """``sspcmr study --estimate``: estimate ``study`` and print the report; returns the exit code.

    Raises:
        ValueError: an unknown GPU, an MFU outside (0, 1], a GPU count below 1.
    """
    gpus = list(gpus or ["h100"])
    counts = list(counts or [1])
    unknown = [gpu for gpu in gpus if gpu not in GPUS]
    if unknown:
        raise ValueError(f"--gpu {' '.join(unknown)}: choose from {', '.join(GPUS)}")
    if not 0 < mfu <= 1:
        raise ValueError(f"--mfu {mfu}: a fraction of the peak in (0, 1]")
    if any(n < 1 for n in counts):
        raise ValueError(f"--gpus {counts}: GPU counts are positive")
    print(format_estimate(estimate_study(study, slices_per_epoch), gpus, mfu, counts))
    return 0
