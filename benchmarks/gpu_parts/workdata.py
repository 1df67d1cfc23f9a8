"""The benchmark's own synthetic data: the phantom in both layouts, prepared, with the reference's default split
scaled down (no test subjects, the M&Ms-2 overlap pathologies kept), as ``sspcmr synth`` -> ``sspcmr prepare`` ->
``sspcmr splits default --test-per-vendor 0 --mm2-test 999 --keep-mm2-overlap`` would write it.

M&Ms-2 subjects carry the long-axis views that ``Orientation`` and ``Multitask`` train on (their configs set
``long_axis_only``), so both layouts are generated.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

TAG = ".sspcmr-gpubench"  # marks a work folder this benchmark created, so it may replace what is inside
READY = "ready.json"  # written last: the recipe of complete data


@dataclass(frozen=True)
class DataRecipe:
    """What to generate.

    Attributes:
        size: phantom size preset (``tiny``, ``small``, ``realistic``).
        subjects: subjects per layout (M&Ms and M&Ms-2).
        seed: phantom seed.
    """

    size: str
    subjects: int
    seed: int = 0


REFERENCE_DATA = DataRecipe("realistic", 4)
TOY_DATA = DataRecipe("tiny", 2)


def _claim(work: Path) -> None:
    """Create ``work`` or check that this benchmark made it: never empty a folder someone else owns."""
    if work.exists() and any(work.iterdir()) and not (work / TAG).is_file():
        raise SystemExit(f"--work {work} is not empty and was not made by benchmarks/gpu.py: give a new folder")
    work.mkdir(parents=True, exist_ok=True)
    (work / TAG).touch()


def ensure_data(work: Path, recipe: DataRecipe, workers: int) -> dict:
    """Prepared data and split under ``work`` (reused when ``work/ready.json`` records the same recipe).

    Args:
        work: the work folder (``raw/``, ``prepared/``, ``split.yaml``).
        recipe: what to generate.
        workers: processes for generation and preparation.

    Returns:
        ``prepared`` and ``split`` paths, whether they were ``reused``, the ``seconds`` taken and the recipe.
    """
    work = Path(work)
    _claim(work)
    raw, prepared, split = work / "raw", work / "prepared", work / "split.yaml"
    start = time.perf_counter()
    ready = work / READY
    reused = ready.is_file() and json.loads(ready.read_text()) == asdict(recipe) and split.is_file()
    if not reused:
        from sspcmr.data.prepare import prepare_dataset
        from sspcmr.data.splits import default_split, write_split
        from sspcmr.data.store import PreparedDataset
        from sspcmr.phantom import generate_dataset

        ready.unlink(missing_ok=True)
        for folder in (raw, prepared):  # another recipe's subjects must not linger
            shutil.rmtree(folder, ignore_errors=True)
        generate_dataset(raw, layout="both", subjects=recipe.subjects, seed=recipe.seed, size=recipe.size,
                         workers=workers, progress=False)
        prepare_dataset(raw, prepared, workers=workers, progress=False)
        metadata = PreparedDataset(prepared).metadata_frames()
        write_split(default_split(metadata, per_vendor=0, mm2_test_ids=[], remove_overlap=False), split)
        ready.write_text(json.dumps(asdict(recipe)))
    return {"prepared": str(prepared), "split": str(split), "reused": reused,
            "seconds": time.perf_counter() - start, **asdict(recipe)}
