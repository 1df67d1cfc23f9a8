"""Measure the synthetic phantom: generation time per size and realism figures.

Usage::

    python benchmarks/phantom_realism.py [--subjects 24] [--size tiny] [--timing-sizes tiny small realistic]

Prints generation seconds per subject for each size, then over ``--subjects`` subjects of
``--size``: blood/myocardium intensity ratio, label-volume errors against the truths (EDV, ESV, EF,
ES-vs-ED myocardial volume), threshold-baseline Dice and base-vs-apex appearance separability.
The figures in docs/synthetic-data.md come from this script.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sspcmr.phantom import synthesise_subject
from sspcmr.phantom.realism import (
    blood_myocardium_ratio,
    label_volumes_ml,
    nearest_centroid_accuracy,
    slice_features,
    threshold_baseline,
)


def timing(size: str, count: int) -> list[float]:
    out = []
    for i in range(count):
        start = time.perf_counter()
        synthesise_subject(np.random.SeedSequence([99, i]), "ABCD"[i % 4], size, long_axis_views=())
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subjects", type=int, default=24)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--timing-sizes", nargs="*", default=["tiny", "small", "realistic"])
    parser.add_argument("--timing-count", type=int, default=4)
    args = parser.parse_args()
    for size in args.timing_sizes:
        t = timing(size, args.timing_count)
        print(f"generation {size:9s}: {np.mean(t):.2f} s/subject (min {np.min(t):.2f}, max {np.max(t):.2f}, "
              f"{args.timing_count} subjects, one core, short axis only)")
    if args.subjects < 1:
        return
    rows = []
    feats, classes, groups = [], [], []
    for i in range(args.subjects):
        vendor = "ABCD"[i % 4]
        s = synthesise_subject(np.random.SeedSequence([7, i]), vendor, args.size, long_axis_views=())
        image = s.short_axis.image.astype(np.float64) * (s.short_axis.scl_slope or 1.0)
        labels, affine, truth = s.short_axis.labels.astype(np.uint8), s.short_axis.affine, s.truth
        ed, es = truth["ed_frame"], truth["es_frame"]
        v_ed, v_es = label_volumes_ml(labels[..., ed], affine), label_volumes_ml(labels[..., es], affine)
        spacing = tuple(np.linalg.norm(affine[:3, :3], axis=0))
        ef = (v_ed["lv"] - v_es["lv"]) / v_ed["lv"]
        base = threshold_baseline(image[..., ed], labels[..., ed], spacing)
        rows.append({
            "vendor": vendor,
            "ratio": blood_myocardium_ratio(image[..., ed], labels[..., ed]),
            "edv_err": v_ed["lv"] / truth["lv_edv_ml"] - 1,
            "esv_err": v_es["lv"] / truth["lv_esv_ml"] - 1,
            "ef_err": ef - truth["lv_ef"],
            "rv_edv_err": v_ed["rv"] / truth["rv_edv_ml"] - 1,
            "myo_es_ed": v_es["myo"] / v_ed["myo"] - 1,
            "base_lv": base["lv"],
            "base_myo": base["myo"],
            "seeded_lv": base["lv_seeded"],
        })
        positions = np.array(truth["slice_positions"])
        for name, target in (("base", 0.1), ("apex", 0.85)):
            k = int(np.argmin(np.abs(positions - target)))
            feats.append(slice_features(image[:, :, k, ed], spacing[0]))
            classes.append(name)
            groups.append(i)
    import pandas as pd

    frame = pd.DataFrame(rows)
    with pd.option_context("display.precision", 3, "display.width", 160):
        print(f"\nrealism over {args.subjects} {args.size} subjects (vendors A-D):")
        print(frame.describe().loc[["mean", "std", "min", "max"]].to_string())
        print("\nper vendor blood/myocardium ratio:", frame.groupby("vendor")["ratio"].mean().round(2).to_dict())
        print("mean |EF error| (percentage points):", round(100 * frame["ef_err"].abs().mean(), 2))
    acc = nearest_centroid_accuracy(np.array(feats), np.array(classes), np.array(groups))
    print(f"base-vs-apex nearest-centroid accuracy (leave one subject out): {acc:.3f}")


if __name__ == "__main__":
    main()
