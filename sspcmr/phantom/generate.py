"""Generate a whole synthetic data set in the M&Ms and/or M&Ms-2 layouts, in parallel, with progress."""

from __future__ import annotations

import string
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .profiles import DEFAULT_VENDORS, SIZE_PRESETS, VENDOR_PROFILES
from .subject import synthesise_subject
from .writers import write_mnms2_csv, write_mnms2_subject, write_mnms_csv, write_mnms_subject

LAYOUTS = ("mnms", "mnms2")
_LAYOUT_STREAM = {"mnms": 1, "mnms2": 2}


@dataclass(frozen=True)
class _Task:
    root: str
    layout: str
    index: int
    code: str
    vendor: str
    size: str
    seed: int


def mnms_codes(count: int, seed: int) -> list[str]:
    """Unique 6-character M&Ms-style codes (letter-digit-letter-digit-letter-digit), e.g. ``A0S9V9``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    letters, digits = string.ascii_uppercase, string.digits
    codes: list[str] = []
    seen: set[str] = set()
    while len(codes) < count:
        code = "".join(
            (letters if i % 2 == 0 else digits)[int(rng.integers(0, 26 if i % 2 == 0 else 10))] for i in range(6)
        )
        if code not in seen:
            seen.add(code)
            codes.append(code)
    return codes


def _run(task: _Task) -> dict:
    start = time.perf_counter()
    seed = np.random.SeedSequence([task.seed, _LAYOUT_STREAM[task.layout], task.index])
    views = ("4ch", "2ch") if task.layout == "mnms2" else ()
    subject = synthesise_subject(seed, task.vendor, task.size, long_axis_views=views)
    writer = write_mnms_subject if task.layout == "mnms" else write_mnms2_subject
    row = writer(Path(task.root), task.code, subject)
    sax = subject.short_axis
    spacing = np.linalg.norm(sax.affine[:3, :3], axis=0)
    truth = subject.truth
    return {
        "row": row,
        "summary": {
            "layout": task.layout,
            "subject": task.code,
            "vendor": task.vendor,
            "pathology": truth["pathology"],
            "shape": tuple(int(n) for n in sax.image.shape),
            "dtype": str(sax.image.dtype),
            "pixel_mm": float(spacing[0]),
            "slice_mm": float(spacing[2]),
            "ed": truth["ed_frame"],
            "es": truth["es_frame"],
            "lv_edv_ml": truth["lv_edv_ml"],
            "lv_ef": truth["lv_ef"],
            "rv_edv_ml": truth["rv_edv_ml"],
            "lv_mass_g": truth["lv_mass_ed_g"],
            "seconds": time.perf_counter() - start,
        },
    }


def generate_dataset(out: str | Path, layout: str = "both", subjects: int = 8, seed: int = 0, size: str = "tiny",
                     vendors: list[str] | None = None, workers: int = 1, progress: bool = True) -> list[dict]:
    """Generate a synthetic data set.

    Args:
        out: output root; ``MnM/`` and/or ``MnM2/`` (and ``sspcmr_truth/``) are written below it.
        layout: ``mnms``, ``mnms2`` or ``both``.
        subjects: number of subjects per layout.
        seed: data-set seed; the same seed gives identical arrays whatever ``workers`` is.
        size: ``tiny`` (64-96 px, 6-8 slices, 8-12 frames), ``small`` or ``realistic``
            (192-256 px, 8-14 slices, 20-35 frames).
        vendors: vendor profiles to cycle through (default: A-D for M&Ms, A-C for M&Ms-2; ``E``
            is the extra unseen profile).
        workers: parallel processes.
        progress: show a progress bar.

    Returns:
        One summary dictionary per subject (layout, ID, vendor, pathology, shape, spacing,
        ED/ES, true volumes, generation seconds), in generation order.
    """
    if layout not in (*LAYOUTS, "both"):
        raise ValueError(f"layout must be one of mnms, mnms2, both; got {layout!r}")
    if size not in SIZE_PRESETS:
        raise ValueError(f"size must be one of {sorted(SIZE_PRESETS)}; got {size!r}")
    if subjects < 1:
        raise ValueError(f"subjects must be at least 1; got {subjects}")
    if subjects > 999 and layout in ("mnms2", "both"):
        raise ValueError("the M&Ms-2 layout has 3-digit subject codes: at most 999 subjects")
    for vendor in vendors or []:
        if vendor not in VENDOR_PROFILES:
            raise ValueError(f"unknown vendor profile {vendor!r}; choose from {sorted(VENDOR_PROFILES)}")
    root = Path(out)
    layouts = LAYOUTS if layout == "both" else (layout,)
    tasks: list[_Task] = []
    for name in layouts:
        chosen = list(vendors) if vendors else list(DEFAULT_VENDORS[name])
        codes = mnms_codes(subjects, seed) if name == "mnms" else [f"{i + 1:03d}" for i in range(subjects)]
        for i, code in enumerate(codes):
            tasks.append(_Task(str(root), name, i, code, chosen[i % len(chosen)], size, seed))
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(tqdm(pool.map(_run, tasks), total=len(tasks), desc="synth", disable=not progress))
    else:
        results = [_run(task) for task in tqdm(tasks, desc="synth", disable=not progress)]
    for name in layouts:
        rows = [r["row"] for r, t in zip(results, tasks, strict=True) if t.layout == name]
        (write_mnms_csv if name == "mnms" else write_mnms2_csv)(root, rows)
    return [r["summary"] for r in results]
