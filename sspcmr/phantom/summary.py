"""Human-readable summary of a generated synthetic data set."""

from __future__ import annotations

import pandas as pd


def format_summary(summary: list[dict]) -> str:
    """Per-layout and per-vendor table of subjects, geometry and true cardiac function.

    Args:
        summary: the list returned by :func:`~.generate.generate_dataset`.
    """
    frame = pd.DataFrame(summary)
    frame["matrix"] = frame["shape"].map(lambda s: f"{s[0]}x{s[1]}")
    frame["slices"] = frame["shape"].map(lambda s: s[2])
    frame["frames"] = frame["shape"].map(lambda s: s[3])
    frame["ed_not_0"] = frame["ed"] != 0
    grouped = frame.groupby(["layout", "vendor"])
    table = grouped.agg(
        subjects=("subject", "count"),
        dtype=("dtype", "first"),
        matrix=("matrix", lambda m: ", ".join(sorted(set(m)))),
        pixel_mm=("pixel_mm", "mean"),
        slice_mm=("slice_mm", "mean"),
        slices=("slices", "mean"),
        frames=("frames", "mean"),
        ed_not_0=("ed_not_0", "sum"),
        lv_edv_ml=("lv_edv_ml", "mean"),
        lv_ef=("lv_ef", "mean"),
        rv_edv_ml=("rv_edv_ml", "mean"),
        lv_mass_g=("lv_mass_g", "mean"),
        seconds=("seconds", "mean"),
    )
    pathologies = frame.groupby(["layout", "pathology"]).size().unstack(fill_value=0)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 2):
        return (
            f"{len(frame)} subjects\n\n{table.to_string()}\n\npathologies per layout:\n{pathologies.to_string()}"
        )
