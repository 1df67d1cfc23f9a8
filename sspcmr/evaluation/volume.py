"""Collecting per-volume results during ``test`` (across DDP ranks) and writing them.

Each rank scores the volumes it was given (a disjoint, unpadded share: no volume counted twice or
dropped); the rows are gathered to rank 0, checked for duplicates, and written atomically:

* ``volumes.csv``: one row per (subject, phase): Dice, HD95, ASSD per class (LV, MYO, RV);
* ``clinical.csv``: one row per subject: LV/RV EDV, ESV, EF and LV mass, predicted, true and errors;
* ``slices.csv``: slice-level Dice against relative position in the labelled extent;
* ``summary_*.csv`` (overall, by phase, vendor, pathology; clinical), ``summary.txt`` (the printed table) and
  ``dice_by_position.csv`` / ``.png`` (see :mod:`sspcmr.evaluation.summary`).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist
from lightly.utils.dist import world_size

from sspcmr.data import keys as K
from sspcmr.data.atomic import atomic_write_bytes

from .clinical import PhaseVolumes, clinical_rows
from .metrics import evaluate_volume, slice_dice_rows
from .summary import clinical_summary, dice_by_slice_position, plot_dice_by_position, summary_tables, write_tables


class VolumeEvaluator:
    """Accumulates per-volume metrics; ``gather`` then ``write`` on rank 0."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.table = ""
        self.volumes: list[dict] = []
        self.phases: list[PhaseVolumes] = []
        self.slices: list[dict] = []

    def add(self, batch: dict, pred: torch.Tensor, gt: torch.Tensor) -> dict:
        """Score one volume: ``pred`` and ``gt`` (Z, H, W) on the native grid; returns its row."""
        spacing = [float(v) for v in batch[K.VOXEL_SPACING]]
        ident = {"dataset": batch[K.DATASET][0], "subject": batch[K.SUBJECT][0], "phase": batch[K.PHASE]}
        extra = {"vendor": batch[K.VENDOR][0], "pathology": batch[K.PATHOLOGY][0]}
        pred_np, gt_np = pred.numpy(), gt.numpy()
        row = evaluate_volume(pred_np, gt_np, spacing, **ident, **extra).to_row()
        self.volumes.append(row)
        self.phases.append(PhaseVolumes.from_labels(pred_np, gt_np, spacing, **ident, **extra))
        self.slices += slice_dice_rows(pred_np, gt_np, **ident)
        return row

    def gather(self, strategy=None) -> dict[str, list]:
        """All ranks' rows on every rank (``all_gather_object``); raises if a volume was scored twice."""
        local = {"volumes": self.volumes, "phases": self.phases, "slices": self.slices}
        if world_size() > 1:
            parts: list = [None] * dist.get_world_size()
            dist.all_gather_object(parts, local)
            local = {key: [row for part in parts for row in part[key]] for key in local}
        keys = [(r["dataset"], r["subject"], r["phase"]) for r in local["volumes"]]
        if len(keys) != len(set(keys)):
            raise RuntimeError("a volume was evaluated twice; the test loader must shard without repeats")
        return local

    def write(self, rows: dict[str, list], out: Path) -> dict[str, float]:
        """Write the tables into ``out``; returns headline numbers (mean Dice per class, EF errors)."""
        out.mkdir(parents=True, exist_ok=True)
        volumes = pd.DataFrame(rows["volumes"]).sort_values(["dataset", "subject", "phase"])
        clinical = pd.DataFrame(clinical_rows(rows["phases"]))
        slices = pd.DataFrame(rows["slices"])
        for name, table in (("volumes.csv", volumes), ("clinical.csv", clinical), ("slices.csv", slices)):
            atomic_write_bytes(out / name, lambda tmp, t=table: t.to_csv(tmp, index=False))
        write_reports(volumes, clinical, slices, out)
        self.table = format_headline(volumes, clinical)
        atomic_write_bytes(out / "summary.txt", lambda tmp: tmp.write_text(self.table + "\n"))
        headline = {f"dice_{c}": float(volumes[f"dice_{c}"].mean()) for c in ("LV", "MYO", "RV")}
        headline["dice_mean"] = float(volumes["dice_mean"].mean())
        for c in ("LV", "MYO", "RV"):
            headline[f"hd95_{c}"] = float(volumes[f"hd95_{c}"].mean())
        for index in ("LV_EF", "RV_EF"):
            column = f"{index}_abserr"
            if column in clinical and clinical[column].notna().any():
                headline[f"{index}_abs_error"] = float(clinical[column].mean())
        return {k: v for k, v in headline.items() if not math.isnan(v)}


def write_reports(volumes: pd.DataFrame, clinical: pd.DataFrame, slices: pd.DataFrame, out: Path) -> None:
    """Summary tables (overall, by phase, vendor, pathology), clinical errors and the position plot."""
    tables = {f"summary_{name}": table for name, table in summary_tables(volumes).items()}
    tables["summary_clinical"] = clinical_summary(clinical)
    if "vendor" in clinical:
        tables["summary_clinical_by_vendor"] = clinical_summary(clinical, by="vendor")
    if len(slices):
        position = dice_by_slice_position(slices)
        tables["dice_by_position"] = position
        if len(position):
            plot_dice_by_position(position, out / "dice_by_position.png")
    write_tables(tables, out)


def format_headline(volumes: pd.DataFrame, clinical: pd.DataFrame) -> str:
    """The demo's test table: mean (sd) 3D Dice and HD95 per class and phase, and EF errors."""
    lines = ["phase  n   Dice LV       Dice MYO      Dice RV       mean   HD95 LV/MYO/RV (mm)"]
    for phase, group in [("all", volumes), *volumes.groupby("phase")]:
        dice = [f"{group[f'dice_{c}'].mean():.3f}±{group[f'dice_{c}'].std(ddof=1):.3f}" for c in ("LV", "MYO", "RV")]
        hd = "/".join(f"{group[f'hd95_{c}'].mean():.1f}" for c in ("LV", "MYO", "RV"))
        lines.append(f"{phase:5s} {len(group):3d}  {'  '.join(dice)}  {group['dice_mean'].mean():.3f}  {hd}")
    for index in ("LV_EF", "RV_EF", "LV_EDV", "LV_mass"):
        column = f"{index}_err"
        if column in clinical and clinical[column].notna().any():
            errors = clinical[column].dropna()
            lines.append(f"{index} error: mean {errors.mean():+.1f}, MAE {errors.abs().mean():.1f} (n={len(errors)})")
    return "\n".join(lines)
