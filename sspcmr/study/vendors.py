"""The per-vendor table of a study report: mean test Dice on each vendor's test volumes, so that a vendor no
labelled subject came from (the phantom's unseen vendor E) is read on its own."""

from __future__ import annotations

import pandas as pd

from sspcmr.study.metrics import DEFAULT_VARIANT
from sspcmr.study.tables import Table, format_cell, markdown, method_order, subset_key

__all__ = ["vendor_table"]


def vendor_table(volumes: pd.DataFrame) -> Table | None:
    """Per method and subset size (default variant): per vendor, the mean over seeds of each seed's mean Dice
    over that vendor's test volumes, ± the sample std across seeds; None without vendor information.

    Args:
        volumes: :func:`~sspcmr.study.paired.run_volumes` of the kept runs (``vendor``, ``dice_mean``,
            ``variant``, ``method``, ``label``, ``subset``, ``seed``).
    """
    if volumes.empty or "vendor" not in volumes:
        return None
    frame = volumes[volumes["variant"] == DEFAULT_VARIANT].assign(vendor=lambda f: f["vendor"].astype(str))
    if frame.empty:
        return None
    vendors = sorted(frame["vendor"].unique())
    per_seed = frame.groupby(["method", "subset", "vendor", "seed"], sort=False)["dice_mean"].mean().reset_index()
    summary = per_seed.groupby(["method", "subset", "vendor"], sort=False)["dice_mean"].agg(["mean", "std"])
    labels = dict(zip(frame["method"], frame["label"], strict=False))
    present = {(m, s) for m, s, _ in summary.index}
    rows, data = [], []
    for subset in sorted(frame["subset"].unique(), key=subset_key):
        for method in method_order(frame):
            if (method, subset) not in present:
                continue
            cells = []
            for vendor in vendors:
                mean, std = summary.loc[(method, subset, vendor)] if (method, subset, vendor) in summary.index \
                    else (float("nan"), float("nan"))
                cells.append(format_cell(float(mean), float(std), 3))
                data.append({"method": method, "label": labels[method], "subset": subset, "vendor": vendor,
                             "mean": float(mean), "std": float(std)})
            rows.append([subset, labels[method], *cells])
    counts = frame.drop_duplicates(["subject", "phase"]).groupby("vendor").size() if "subject" in frame else None
    header = ["Labelled subjects", "Method",
              *(f"{v} ({counts[v]} volumes)" if counts is not None else v for v in vendors)]
    caption = ("Mean test Dice over LV, MYO and RV per vendor of the test subjects (default training), mean ± "
               "sample std across seeds of each seed's vendor mean. A vendor without labelled training subjects "
               "(the phantom's E in configs/study/low-label.yaml) measures generalisation to an unseen scanner.")
    return Table("per_vendor_dice", "Dice per vendor", caption, pd.DataFrame(data), markdown(header, rows))
