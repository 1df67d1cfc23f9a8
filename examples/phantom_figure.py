"""Render the picture in docs/synthetic-data.md: basal, mid and apical slices at ED and ES for two
vendors, with label outlines beside each image.

Usage::

    python examples/phantom_figure.py --out docs/images/phantom.png [--size realistic] [--seed 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torchvision.io import write_png

from sspcmr.phantom import synthesise_subject

COLOURS = {1: (230, 60, 60), 2: (60, 200, 80), 3: (70, 120, 240)}


def _to_rgb(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [0.5, 99.5])
    grey = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)
    return np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=-1)


def _outline(rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    for value, colour in COLOURS.items():
        mask = labels == value
        edge = mask & ~(
            np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1)
        )
        out[edge] = colour
    return out


def _panel(image: np.ndarray, labels: np.ndarray, size: int) -> np.ndarray:
    """Display orientation: array axis 0 runs left-right, axis 1 top-bottom; resized to ``size``."""
    rgb = np.concatenate([_to_rgb(image), _outline(_to_rgb(image), labels)], axis=0)
    tensor = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 1, 0))).float()[None]
    height = size
    width = int(round(size * rgb.shape[0] / rgb.shape[1]))
    tensor = torch.nn.functional.interpolate(tensor, size=(height, width), mode="nearest")
    return tensor[0].byte().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images/phantom.png")
    parser.add_argument("--size", default="realistic", choices=["tiny", "small", "realistic"])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--vendors", nargs=2, default=["A", "B"])
    args = parser.parse_args()
    rows = []
    for vendor in args.vendors:
        subject = synthesise_subject(np.random.SeedSequence([args.seed, ord(vendor)]), vendor, args.size,
                                     pathology="normal", long_axis_views=())
        image = subject.short_axis.image.astype(np.float32)
        labels = subject.short_axis.labels
        positions = np.array(subject.truth["slice_positions"])
        picks = [int(np.argmin(np.abs(positions - p))) for p in (0.08, 0.45, 0.85)]
        for phase in ("ed_frame", "es_frame"):
            t = subject.truth[phase]
            panels = [_panel(image[:, :, k, t], labels[:, :, k, t], 192) for k in picks]
            rows.append(np.concatenate(panels, axis=2))
    height = max(r.shape[2] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, 0), (0, height - r.shape[2]))) for r in rows]
    figure = np.concatenate(rows, axis=1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_png(torch.from_numpy(figure), args.out)
    print(f"wrote {args.out}: rows = {args.vendors[0]} ED, {args.vendors[0]} ES, {args.vendors[1]} ED, "
          f"{args.vendors[1]} ES; columns = basal, mid, apical (image | label outline)")


if __name__ == "__main__":
    main()
