"""Data-loader throughput: sspcmr's batched augmentation against the reference's per-sample MONAI pipeline.

Usage::

    python benchmarks/loader.py --prepared PREP --split SPLIT [--modes segment pretrain dino eval]
        [--batch-size 32] [--batches 20] [--warmup 2] [--rounds 4] [--workers 0] [--device cpu|cuda] [--threads 1]
        [--aug-repeats N] [--profile] [--profile-batches 5] [--seed 0] [--out results.json]
        [--reference-fidelity faithful|standin] [--slice-dir DIR]

For every mode two pipelines deliver augmented batches of ``--batch-size`` source slices from the same
prepared memory-mapped store and the same training rows:

* ``sspcmr``: ``CineDataModule.train_dataloader()`` (``SliceDataset`` + ``collate_slices``), the batch moved
  to ``--device``, then the recipe a method applies in ``augment`` (batched resampling and intensity transforms);
* ``monai``: the reference protocol, per sample on the CPU inside the data loader: one affine resample per
  view (a MONAI ``RandomizableTransform`` drawing from a NumPy ``RandomState``, torch ``affine_grid`` +
  ``grid_sample``), subject standardisation, MONAI's dictionary intensity transforms and the label one-hot,
  collated with torch's default collate (``reference_pipeline.py``). With ``--reference-fidelity faithful``
  (default) it also does the reference pipeline's own per-sample overheads: every sample read from its own
  small file (written once into ``--slice-dir``) and a deep copy of the sample dict before every transform;
  ``standin`` reads the shared memory maps and copies shallowly, and runs faster than the reference's own.

Modes (the MONAI views copy the parameters of sspcmr's presets, so both pipelines do the same work):

* ``segment``: labelled frames, one augmented view plus the one-hot label (``presets.segmentation_train``);
* ``pretrain``: every frame, two views (``presets.segmentation_train(views=2)``, SimCLR / PCL);
* ``dino``: every frame, 2 global 256 px + 6 local 128 px views (``sspcmr.methods.dino.dino_views``);
* ``eval``: labelled frames, image-centred resampling and standardisation only (``presets.evaluation``).

Throughput is reported as source slices per second and views per second; with ``--threads 1 --workers 0``
everything runs on one core, so the figures are per CPU core. The script also times the augmentation alone
for a batch of 128 native 224 x 224 slices to 256 x 256 (segment recipe): CUDA events on a GPU,
``perf_counter`` on the CPU, median over ``--aug-repeats``. ``--profile`` adds, for both pipelines,
milliseconds per batch by Python function (cProfile: loading and collate against each function of
``sspcmr.transforms`` or MONAI) and by torch op (torch.profiler); profile with ``--workers 0``, as only
the main process is seen.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import monai
import numpy as np
import torch
from augment_timing import time_augmentation
from lightning.pytorch.utilities import move_data_to_device
from loader_profile import profile_pipeline
from reference_pipeline import FIDELITIES, ReferenceSliceDataset, SliceFiles, reseed_worker
from torch.utils.data import DataLoader

from sspcmr.data.datamodule import CineDataModule
from sspcmr.methods.dino import dino_views
from sspcmr.transforms import presets
from sspcmr.transforms.views import Augmenter

MODES = ("segment", "pretrain", "dino", "eval")


# -- measurement -------------------------------------------------------------------------------------------


@dataclass
class Setup:
    """Everything one mode needs: the data module (sspcmr side), its recipe and whether it is training."""

    mode: str
    module: CineDataModule
    augmenter: Augmenter
    training: bool
    with_labels: bool


def make_setup(mode: str, args: argparse.Namespace) -> Setup:
    """The data module and recipe of a benchmark mode."""
    common = {"data_dir": args.prepared, "split": args.split, "batch_size": args.batch_size,
              "num_workers": args.workers, "seed": args.seed}
    if mode == "segment":
        dm = CineDataModule(mode="segment", **common)
        setup = Setup(mode, dm, presets.segmentation_train(), training=True, with_labels=True)
    elif mode == "eval":
        dm = CineDataModule(mode="segment", **common)
        setup = Setup(mode, dm, dm.resampling, training=False, with_labels=True)
    elif mode == "pretrain":
        dm = CineDataModule(mode="pretrain", **common)
        setup = Setup(mode, dm, presets.segmentation_train(views=2), training=True, with_labels=False)
    elif mode == "dino":
        dm = CineDataModule(mode="pretrain", **common)
        setup = Setup(mode, dm, dino_views(), training=True, with_labels=False)
    else:
        raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")
    dm.setup("fit")
    return setup


def cycle(loader: DataLoader) -> Iterator[Any]:
    """Batches without end: the segment training set of a small data set is only a few batches long."""
    while True:
        yield from loader


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Pipeline:
    """An endless stream of raw batches and the step that turns one into an augmented batch."""

    batches: Iterator[Any]
    step: Callable[[Any], Any]
    device: torch.device

    def warm(self, count: int) -> None:
        """Untimed batches: worker start-up, first memory-map reads, allocator growth."""
        for _ in range(count):
            self.step(next(self.batches))
        synchronise(self.device)

    def time(self, count: int) -> dict[str, float]:
        """Seconds for ``count`` batches, split into waiting for the loader and the step after it."""
        load = work = 0.0
        for _ in range(count):
            t0 = time.perf_counter()
            batch = next(self.batches)
            t1 = time.perf_counter()
            self.step(batch)
            synchronise(self.device)  # the augmented batch must exist before the clock stops
            t2 = time.perf_counter()
            load, work = load + t1 - t0, work + t2 - t1
        return {"seconds": load + work, "load_seconds": load, "augment_seconds": work}


def sspcmr_pipeline(setup: Setup, device: torch.device) -> Pipeline:
    """sspcmr's loader and the step Lightning would run after it (transfer, then batched augmentation)."""
    loader = setup.module.train_dataloader()

    generator = torch.Generator().manual_seed(setup.module.seed)  # what a method's augmentation draws from

    def step(batch: dict[str, Any]) -> dict[str, Any]:
        return setup.augmenter(move_data_to_device(batch, device), generator)  # Lightning's batch transfer

    return Pipeline(cycle(loader), step, device)


def monai_pipeline(setup: Setup, args: argparse.Namespace) -> Pipeline:
    """The reference's per-sample loader on the CPU; the batch arrives augmented, so the step does nothing."""
    dataset = ReferenceSliceDataset(
        setup.module.prepared, setup.module.datasets["train"].rows, setup.augmenter, setup.with_labels, args.seed,
        fidelity=args.reference_fidelity, slice_files=SliceFiles(slice_directory(args)),
    )
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=args.workers,
                        persistent_workers=args.workers > 0, worker_init_fn=reseed_worker)
    return Pipeline(cycle(loader), lambda batch: batch, torch.device("cpu"))


def slice_directory(args: argparse.Namespace) -> Path:
    """Where the faithful reference pipeline keeps its per-sample files: ``--slice-dir``, or a folder in the
    temporary directory named after the prepared folder (written once, reused by later runs)."""
    if args.slice_dir is not None:
        return Path(args.slice_dir)
    key = hashlib.sha256(str(Path(args.prepared).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"sspcmr-reference-slices-{key}"


def profile_mode(setup: Setup, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Profiles of both pipelines of a mode (after the usual warm-up)."""
    out = {}
    for name, pipeline in (("sspcmr", sspcmr_pipeline(setup, device)), ("monai", monai_pipeline(setup, args))):
        pipeline.warm(args.warmup)
        out[name] = profile_pipeline(pipeline, args.profile_batches)
    return out


def combine(rounds: list[dict[str, float]], batch_size: int, views_per_slice: int) -> dict[str, Any]:
    """Sum the rounds of one pipeline into slices and views per second (and keep each round's rate)."""
    total = {key: sum(r[key] for r in rounds) for key in ("seconds", "load_seconds", "augment_seconds")}
    slices = batch_size * sum(r["batches"] for r in rounds)
    return {**total, "slices": slices, "views": slices * views_per_slice,
            "slices_per_s": slices / total["seconds"], "views_per_s": slices * views_per_slice / total["seconds"],
            "round_slices_per_s": [batch_size * r["batches"] / r["seconds"] for r in rounds]}


def benchmark_mode(setup: Setup, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Throughput of both pipelines for one mode.

    Without loader workers the timed batches are split into ``--rounds`` rounds alternating between the
    pipelines, so a load change on a shared machine falls on both rather than on whichever ran second. With
    workers, an idle pipeline's workers would keep prefetching on the CPU the other is timed on, so each
    pipeline then runs alone in one round and its workers are shut down before the next starts.
    """
    makers = {"sspcmr": lambda: sspcmr_pipeline(setup, device), "monai": lambda: monai_pipeline(setup, args)}
    timings: dict[str, list[dict[str, float]]] = {name: [] for name in makers}
    if args.workers == 0:
        pipelines = {name: make() for name, make in makers.items()}
        for pipeline in pipelines.values():
            pipeline.warm(args.warmup)
        per_round = [len(chunk) for chunk in np.array_split(np.arange(args.batches), args.rounds) if len(chunk)]
        for count in per_round:
            for name, pipeline in pipelines.items():
                timings[name].append({**pipeline.time(count), "batches": count})
    else:
        for name, make in makers.items():
            pipeline = make()
            pipeline.warm(args.warmup)
            timings[name].append({**pipeline.time(args.batches), "batches": args.batches})
            del pipeline  # closes the generator, its iterator and the worker processes
            gc.collect()
    views = setup.augmenter.num_views
    out: dict[str, Any] = {"views_per_slice": views, "train_slices": len(setup.module.datasets["train"])}
    for name, rounds in timings.items():
        out[name] = combine(rounds, args.batch_size, views)
    out["speedup"] = out["sspcmr"]["slices_per_s"] / out["monai"]["slices_per_s"]
    return out


def machine(device: torch.device) -> dict[str, Any]:
    """What ran the benchmark."""
    cpu = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")]
        cpu = models[0] if models else cpu
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "monai": monai.__version__, "numpy": np.__version__}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    # The code measured: sspcmr.transforms changes often, so record which version produced the figures.
    digest = hashlib.sha256()
    for path in sorted(Path(presets.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    info["sspcmr_transforms_sha256"] = digest.hexdigest()[:16]
    return info


def print_table(results: dict[str, Any], args: argparse.Namespace) -> None:
    rounds = f" in {args.rounds} alternating rounds" if args.workers == 0 else ""
    print(f"\n{args.batch_size} slices/batch, {args.batches} timed batches{rounds} after {args.warmup} warm-up, "
          f"threads={args.threads}, workers={args.workers}, sspcmr on {args.device}, MONAI on cpu "
          f"(reference fidelity: {args.reference_fidelity})")
    header = (f"{'mode':9s} {'views':>5s} | {'sspcmr sl/s':>11s} {'views/s':>9s} {'load %':>6s} | "
              f"{'MONAI sl/s':>10s} {'views/s':>9s} | {'speed-up':>8s}")
    print(header)
    print("-" * len(header))
    for mode, r in results["modes"].items():
        s, m = r["sspcmr"], r["monai"]
        print(f"{mode:9s} {r['views_per_slice']:5d} | {s['slices_per_s']:11.1f} {s['views_per_s']:9.1f} "
              f"{100 * s['load_seconds'] / s['seconds']:6.1f} | {m['slices_per_s']:10.1f} {m['views_per_s']:9.1f} | "
              f"{r['speedup']:7.1f}x")
    for a in results["augment_128"]:
        print(f"augmentation, 128 x 224^2 -> 256^2 (segment), {a['device']}, {a['threads']} thread(s): "
              f"median {a['median_ms']:.1f} ms over {a['repeats']}")
    for mode, profiles in results.get("profile", {}).items():
        for name, p in profiles.items():
            print(f"\nprofile {mode} {name}: {p['total_ms_per_batch']:.1f} ms/batch under cProfile "
                  "(cumulative ms, own ms per batch)")
            for f in p["functions"][:12]:
                print(f"  {f['cumulative_ms']:8.1f} {f['own_ms']:8.1f}  {f['function']}")
            print("  torch ops by self CPU time (ms/batch, calls/batch):")
            for op in p["ops"][:8]:
                print(f"  {op['self_ms']:8.1f} {op['calls_per_batch']:8.1f}  {op['op']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepared", required=True, help="folder written by `sspcmr prepare`")
    parser.add_argument("--split", required=True, help="split YAML with train and valid parts")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--batch-size", type=int, default=32, help="source slices per batch")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per pipeline and mode")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches first")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds (--workers 0 only)")
    parser.add_argument("--workers", type=int, default=0, help="data-loader worker processes")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where sspcmr augments")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads of the main process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-fidelity", choices=FIDELITIES, default="faithful",
                        help="the per-sample baseline: 'faithful' reads one file per sample and deep-copies the sample "
                             "dict before every transform, as the reference's pipeline does; 'standin' reads the "
                             "memory maps and copies shallowly (about 2x faster than the reference's own)")
    parser.add_argument("--slice-dir", default=None,
                        help="folder of the faithful baseline's per-sample files (default: one in the temporary "
                             "directory per prepared folder)")
    parser.add_argument("--aug-repeats", type=int, default=None,
                        help="timed calls for the 128-slice figure (default 50 on CUDA, 10 on CPU)")
    parser.add_argument("--profile", action="store_true", help="add a cProfile breakdown of the sspcmr pipeline")
    parser.add_argument("--profile-batches", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available")
    device = torch.device(args.device)

    results: dict[str, Any] = {"machine": machine(device), "args": {k: str(v) for k, v in vars(args).items()},
                               "modes": {}, "augment_128": []}
    setups = {mode: make_setup(mode, args) for mode in args.modes}
    for mode, setup in setups.items():
        results["modes"][mode] = benchmark_mode(setup, args, device)
        print(f"{mode}: sspcmr {results['modes'][mode]['sspcmr']['slices_per_s']:.1f} slices/s, "
              f"MONAI {results['modes'][mode]['monai']['slices_per_s']:.1f} slices/s", flush=True)
    devices = [device] if device.type == "cpu" else [device, torch.device("cpu")]
    for d in devices:
        repeats = args.aug_repeats or (50 if d.type == "cuda" else 10)
        results["augment_128"].append(time_augmentation(d, repeats, args.threads))
    if args.profile:
        results["profile"] = {mode: profile_mode(setup, args, device) for mode, setup in setups.items()}
    print_table(results, args)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
