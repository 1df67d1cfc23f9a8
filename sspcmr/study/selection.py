"""Choosing a learning rate per method on the validation subjects (studies with ``learning_rates``).

A fair comparison gives scratch and every fine-tuning the same tuning budget: each (variant, method, subset)
cell runs at every rate of the study's grid with every seed, each run is scored like the test in native space on
its split's *validation* subjects (``validation_results/``), and the report keeps, per cell, the rate whose mean
validation Dice over seeds is highest (ties: the smaller rate). Every table, interval and figure of the report
then uses the kept runs only; the test subjects play no part in the choice.
"""

from __future__ import annotations

import pandas as pd

from sspcmr.study.metrics import GROUP_KEYS
from sspcmr.study.tables import Table, cell_order, format_cell, markdown, method_order

__all__ = ["select_learning_rates"]


def select_learning_rates(metrics: pd.DataFrame) -> tuple[pd.DataFrame, Table | None]:
    """Keep the runs of each cell's best validation rate.

    Args:
        metrics: One row per run (:func:`~sspcmr.study.metrics.run_metrics`) with ``lr`` and ``val_dice_mean``.

    Returns:
        The kept rows (all rows, unchanged, when no run has a rate) and the ``learning_rate_selection`` table
        (None without rates): per cell and rate the mean ± std validation Dice over seeds, the test Dice beside it
        for information, and which rate was kept.

    Raises:
        ValueError: a grid run without a validation score (its ``validation_results/`` is missing).
    """
    if "lr" not in metrics or metrics["lr"].isna().all():
        return metrics, None
    missing = metrics[metrics["lr"].notna() & metrics["val_dice_mean"].isna()]
    if not missing.empty:
        raise ValueError(f"study report: runs {sorted(missing['id'])[:5]} of the learning-rate grid have no "
                         "validation score (validation_results/volumes.csv); rerun them")
    frame = metrics.assign(subset=metrics["subset"].astype(str))
    summary = (frame.groupby([*GROUP_KEYS, "lr"], sort=False)
               .agg(val_mean=("val_dice_mean", "mean"), val_std=("val_dice_mean", "std"),
                    test_mean=("dice_mean", "mean"), test_std=("dice_mean", "std"), seeds=("seed", "count"))
               .reset_index())
    summary = summary.sort_values([*GROUP_KEYS, "lr"], kind="stable")
    best = summary.loc[summary.groupby(list(GROUP_KEYS), sort=False)["val_mean"].idxmax()]
    chosen = set(zip(*(best[k] for k in (*GROUP_KEYS, "lr")), strict=True))
    summary["chosen"] = [tuple(row) in chosen for row in summary[[*GROUP_KEYS, "lr"]].itertuples(index=False)]
    keep = [tuple(row) in chosen for row in frame[[*GROUP_KEYS, "lr"]].itertuples(index=False)]
    selected = metrics[keep].reset_index(drop=True)

    labels = dict(zip(frame["method"], frame["label"], strict=False))
    summary = cell_order(summary.assign(label=summary["method"].map(labels)), method_order(frame),
                         variants=list(dict.fromkeys(frame["variant"])), then=["lr"])
    rows = [[str(r.variant), str(r.subset), str(r.label), f"{r.lr:g}", format_cell(r.val_mean, r.val_std, 3),
             format_cell(r.test_mean, r.test_std, 3), str(int(r.seeds)), "kept" if r.chosen else ""]
            for r in summary.itertuples()]
    text = markdown(["Variant", "Labelled subjects", "Method", "Learning rate", "Validation Dice", "Test Dice",
                     "Seeds", "Choice"], rows)
    caption = ("Each method and labelled-subset size ran at every learning rate of the grid; the rate with the "
               "highest mean validation Dice over seeds (native space, validation subjects only; ties: the smaller "
               "rate) was kept, and every other table uses only the kept runs. Test Dice is shown for information; "
               "it played no part in the choice.")
    return selected, Table("learning_rate_selection", "Learning rate chosen on validation subjects", caption,
                           summary, text)
