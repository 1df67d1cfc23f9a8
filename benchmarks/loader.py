"""Data-loader throughput: sspcmr's batched augmentation against the reference's per-sample MONAI pipeline.

Usage::

    python benchmarks/loader.py --prepared PREP --split SPLIT [--modes segment pretrain dino eval]
        [--batch-size 32] [--batches 20] [--warmup 2] [--rounds 4] [--workers 0] [--device cpu|cuda] [--threads 1]
        [--aug-repeats N] [--profile] [--profile-batches 5] [--seed 0] [--out results.json]

For every mode two pipelines deliver augmented batches of ``--batch-size`` source slices from the same
prepared memory-mapped store and the same training rows:

* ``sspcmr``: ``CineDataModule.train_dataloader()`` (``SliceDataset`` + ``collate_slices``), the batch moved
  to ``--device``, then the recipe a method applies in ``augment`` (batched resampling and intensity transforms);
* ``monai``: the reference protocol, per sample on the CPU inside the data loader: one affine resample per
  view (a MONAI ``RandomizableTransform`` drawing from a NumPy ``RandomState``, torch ``affine_grid`` +
  ``grid_sample``), subject standardisation, MONAI's dictionary intensity transforms and the label one-hot,
  collated with torch's default collate.

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
import cProfile
import gc
import hashlib
import json
import os
import platform
import pstats
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import monai
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import (
    AsDiscreted,
    Compose,
    MapTransform,
    RandAdjustContrastd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandomizableTransform,
    RandScaleIntensityd,
    RandShiftIntensityd,
)
from torch.utils.data import DataLoader, Dataset, get_worker_info

import sspcmr.data.keys as K
from sspcmr.data.datamodule import CineDataModule
from sspcmr.data.store import PreparedDataset
from sspcmr.methods.dino import dino_views
from sspcmr.transforms import presets
from sspcmr.transforms.geometry import GeometryAugmentation
from sspcmr.transforms.intensity import IntensityAugmentation
from sspcmr.transforms.views import Augmenter, ViewSpec

MODES = ("segment", "pretrain", "dino", "eval")
NUM_CLASSES = 4


# -- the reference per-sample pipeline ------------------------------------------------------------------


class ReferenceResampled(RandomizableTransform, MapTransform):
    """The reference's single-step affine resampling of one 2D sample (docs/reference.md#geometry).

    One ``affine_grid`` + ``grid_sample`` per sample (``align_corners=False``, zero padding; bicubic image,
    nearest label) maps the native slice to ``output_size`` px at ``output_spacing`` mm, centred on the
    ground-truth centre (or the image centre), with a random rotation, linked scale, per-axis flips and
    translation drawn from this transform's NumPy ``RandomState``.

    The sample dict holds ``IMAGE`` (1, H, W) float32, optionally ``LABEL`` (1, H, W), and ``SPACING`` and
    ``CENTER`` as (dim0, dim1) arrays.

    Args:
        geometry: Ranges and probabilities (the same object sspcmr's batched pipeline uses).
        keys: Image key, then optionally the label key.
    """

    def __init__(self, geometry: GeometryAugmentation, keys: KeysCollection = (K.IMAGE, K.LABEL)) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys=True)
        RandomizableTransform.__init__(self, prob=1.0)
        self.geometry = geometry
        self._params = np.eye(3)

    def randomize(self, data: Any = None) -> None:
        """Draw rotation, scale, flips and translation; every draw is made whatever the probabilities."""
        g, r = self.geometry, self.R
        rotate, angle = r.rand() < g.rotation_prob, r.uniform(-g.rotation_range, g.rotation_range)
        rescale, scale = r.rand() < g.scale_prob, r.uniform(*g.scale_range)
        flip = np.where(r.rand(2) < g.flip_prob, -1.0, 1.0)
        shift, tau = r.rand() < g.translation_prob, r.uniform(-g.translation_range, g.translation_range, 2)
        angle, scale, tau = (angle if rotate else 0.0), (scale if rescale else 1.0), (tau if shift else np.zeros(2))
        # R . S . T over normalised output coordinates (x = dim1, y = dim0): p_in = R S (p + t).
        a = np.deg2rad(angle)
        rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
        s = scale * flip
        st = np.diag([s[0], s[1], 1.0])
        st[:2, 2] = s * 2.0 * tau / g.output_size
        self._params = rot @ st

    def theta(self, size: tuple[int, int], spacing: np.ndarray, center: np.ndarray | None) -> np.ndarray:
        """The (2, 3) ``affine_grid`` matrix: output -> native normalised coordinates."""
        g = self.geometry
        n_xy = np.array([size[1], size[0]], dtype=np.float64)
        # Field of view S * spacing_out over the native extent N * spacing_in, per axis.
        d_xy = g.output_spacing * g.output_size / (np.asarray(spacing, np.float64)[::-1] * n_xy)
        theta = self._params[:2] * d_xy[:, None]
        if g.centring == "gt":
            c_xy = np.asarray(center, np.float64)[::-1]
            if g.centre_convention == "reference":
                theta[:, 2] += 2.0 * c_xy / (n_xy - 1.0) - 1.0
            else:
                theta[:, 2] += (2.0 * c_xy + 1.0) / n_xy - 1.0
        return theta

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        d = dict(data)
        self.randomize()
        image = torch.as_tensor(d[K.IMAGE])
        theta = torch.from_numpy(self.theta(tuple(image.shape[-2:]), d[K.SPACING], d.get(K.CENTER))).float()
        s = self.geometry.output_size
        grid = F.affine_grid(theta[None], [1, 1, s, s], align_corners=False)
        d[K.IMAGE] = F.grid_sample(image[None], grid, mode="bicubic", padding_mode="zeros", align_corners=False)[0]
        if K.LABEL in d:
            label = torch.as_tensor(d[K.LABEL]).float()[None]
            d[K.LABEL] = F.grid_sample(label, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0]
        return d


class Standardised(MapTransform):
    """(x - mean) / std with the subject statistics carried in the sample (``MEAN``, ``STD``)."""

    def __init__(self, keys: KeysCollection = K.IMAGE) -> None:
        super().__init__(keys)

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = (d[key] - float(d[K.MEAN])) / float(d[K.STD])
        return d


class RandSolarized(RandomizableTransform, MapTransform):
    """DINO solarisation (MONAI has none): with probability ``prob``, pixels above ``threshold`` become
    ``max - x``, where ``max`` is the standardised subject maximum, as in sspcmr."""

    def __init__(self, keys: KeysCollection, prob: float, threshold: float) -> None:
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob=prob)
        self.threshold = threshold

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        top = (float(d[K.MAX]) - float(d[K.MEAN])) / float(d[K.STD])
        for key in self.key_iterator(d):
            d[key] = torch.where(d[key] > self.threshold, top - d[key], d[key])
        return d


def reference_view(spec: ViewSpec, with_labels: bool) -> Compose:
    """The per-sample MONAI pipeline of one view kind, with the parameters of an sspcmr ``ViewSpec``."""
    i: IntensityAugmentation = spec.intensity
    if i.scale_convention != "monai":
        raise ValueError("RandScaleIntensityd multiplies by (1 + f); only scale_convention='monai' matches it")
    steps: list[Any] = [ReferenceResampled(spec.geometry), Standardised()]
    # Transforms with probability 0 are left out, as the reference's evaluation pipeline has none of them.
    if i.noise_prob > 0:
        steps.append(RandGaussianNoised(K.IMAGE, prob=i.noise_prob, std=i.noise_std, sample_std=True))
    if i.smooth_prob > 0:
        steps.append(RandGaussianSmoothd(K.IMAGE, sigma_x=i.smooth_sigma, sigma_y=i.smooth_sigma, prob=i.smooth_prob))
    if i.scale_prob > 0:
        steps.append(RandScaleIntensityd(K.IMAGE, factors=i.scale_range, prob=i.scale_prob))
    if i.shift_prob > 0:
        steps.append(RandShiftIntensityd(K.IMAGE, offsets=i.shift_range, prob=i.shift_prob))
    if i.gamma_prob > 0:
        steps.append(RandAdjustContrastd(K.IMAGE, gamma=i.gamma_range, prob=i.gamma_prob))
    if i.solarize_prob > 0:
        steps.append(RandSolarized(K.IMAGE, prob=i.solarize_prob, threshold=i.solarize_threshold))
    if with_labels:
        steps.append(AsDiscreted(K.LABEL, to_onehot=NUM_CLASSES))
    return Compose(steps)


class ReferenceSliceDataset(Dataset):
    """Per-sample dataset over the prepared store: reads one native slice and runs every view's pipeline.

    Items are ``{IMAGE (1, S, S), LABEL (4, S, S)}`` for a single-view recipe and ``{VIEWS: [...]}``
    otherwise; every view is already its output size, so torch's default collate stacks them.

    Args:
        prepared: The prepared data set (the same memory maps sspcmr reads).
        rows: Rows of the slice index to serve.
        augmenter: The sspcmr recipe whose views are replicated per sample.
        with_labels: Read, resample and one-hot the label.
        seed: Seed of the transforms' random states (each loader worker reseeds from its own seed).
    """

    def __init__(
        self, prepared: PreparedDataset, rows: pd.DataFrame, augmenter: Augmenter, with_labels: bool, seed: int = 0
    ) -> None:
        self.prepared, self.with_labels = prepared, with_labels
        self.rows = rows.reset_index(drop=True)
        self._index = self.rows[["subject_index", "slice", "frame", "label_index"]].to_numpy(np.int64)
        table = prepared.subjects
        self._spacing = table[["spacing_0", "spacing_1"]].to_numpy(np.float32)
        self._center = table[["gt_center_0", "gt_center_1"]].to_numpy(np.float32)
        self._stats = table[["min", "mean", "std", "max"]].to_numpy(np.float64)
        self.single = augmenter.single_view
        self.pipelines = [reference_view(spec, with_labels) for spec in augmenter.views for _ in range(spec.count)]
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Give every view pipeline its own stream derived from ``seed``."""
        for k, pipeline in enumerate(self.pipelines):
            pipeline.set_random_state(seed=(seed + 7919 * k) % 2**32)

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s, z, t, label_index = (int(v) for v in self._index[i])
        low, mean, std, high = self._stats[s]
        sample: dict[str, Any] = {
            # Minimum-shifted like sspcmr's SliceDataset, so the zero padding is the subject minimum.
            K.IMAGE: (np.asarray(self.prepared.image(s)[t, z], dtype=np.float32) - np.float32(low))[None],
            K.SPACING: self._spacing[s], K.CENTER: self._center[s], K.MEAN: mean, K.STD: std, K.MAX: high,
        }
        if self.with_labels:
            sample[K.LABEL] = np.asarray(self.prepared.labels(s)[label_index, z], dtype=np.int64)[None]
        views = [pipeline(sample) for pipeline in self.pipelines]
        if self.single:
            out = {K.IMAGE: views[0][K.IMAGE]}
            if self.with_labels:
                out[K.LABEL] = views[0][K.LABEL]
            return out
        return {K.VIEWS: [view[K.IMAGE] for view in views]}


def _reseed_worker(worker_id: int) -> None:
    # Forked workers inherit identical RandomStates; without reseeding they would repeat each other's draws.
    info = get_worker_info()
    info.dataset.reseed(info.seed % 2**32)


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


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move a batch's tensors to ``device`` (what Lightning's batch transfer does)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


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
        return setup.augmenter(to_device(batch, device), generator)

    return Pipeline(cycle(loader), step, device)


def monai_pipeline(setup: Setup, args: argparse.Namespace) -> Pipeline:
    """The reference's per-sample loader on the CPU; the batch arrives augmented, so the step does nothing."""
    dataset = ReferenceSliceDataset(
        setup.module.prepared, setup.module.datasets["train"].rows, setup.augmenter, setup.with_labels, args.seed
    )
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=args.workers,
                        persistent_workers=args.workers > 0, worker_init_fn=_reseed_worker)
    return Pipeline(cycle(loader), lambda batch: batch, torch.device("cpu"))


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


def _profiled_name(file: str, name: str, own_share: float) -> str | None:
    """A short name for a profiled function worth listing, or None to leave it out."""
    path = file.replace(os.sep, "/")
    for marker in ("sspcmr/", "monai/transforms/"):
        if marker in path:
            return f"{marker if marker != 'sspcmr/' else ''}{path.split(marker)[-1]}:{name}"
    if path.endswith("benchmarks/loader.py"):
        return f"loader.py:{name}"
    if file == "~" and own_share > 0.01:  # heavy C functions (torch kernels) by their own time
        return name
    return None


def profile_pipeline(pipeline: Pipeline, count: int) -> dict[str, Any]:
    """Milliseconds per batch by Python function (cProfile) and by torch op (torch.profiler, self CPU time).

    Only the main process is seen, so profile with ``--workers 0``.
    """
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        pipeline.step(next(pipeline.batches))
        synchronise(pipeline.device)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # {(file, line, function): (calls, primitive, tottime, cumtime, callers)}
    total = sum(entry[2] for entry in stats.values())
    functions = []
    for (file, _, name), (_, calls, own, cumulative, _) in stats.items():
        label = _profiled_name(file, name, own / total)
        if label is not None:
            functions.append({"function": label, "calls_per_batch": calls / count,
                              "cumulative_ms": 1000.0 * cumulative / count, "own_ms": 1000.0 * own / count})
    functions.sort(key=lambda f: -f["cumulative_ms"])
    # cProfile names the Python function; torch.profiler names the kernels underneath.
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(count):
            pipeline.step(next(pipeline.batches))
            synchronise(pipeline.device)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:10]
    ops = [{"op": e.key, "calls_per_batch": e.count / count, "self_ms": e.self_cpu_time_total / 1000.0 / count}
           for e in events]  # self_cpu_time_total is in microseconds
    return {"batches": count, "total_ms_per_batch": 1000.0 * total / count, "functions": functions, "ops": ops}


def profile_mode(setup: Setup, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Profiles of both pipelines of a mode (after the usual warm-up)."""
    out = {}
    for name, pipeline in (("sspcmr", sspcmr_pipeline(setup, device)), ("monai", monai_pipeline(setup, args))):
        pipeline.warm(args.warmup)
        out[name] = profile_pipeline(pipeline, args.profile_batches)
    return out


def augment_128(device: torch.device, repeats: int, threads: int) -> dict[str, float]:
    """Augmentation alone (segment recipe) of 128 native 224 x 224 slices with labels, to 256 x 256."""
    gen = torch.Generator().manual_seed(0)
    b, n = 128, 224
    batch = {
        K.IMAGE: torch.rand(b, 1, n, n, generator=gen).mul(800.0).to(device),
        K.LABEL: torch.randint(0, NUM_CLASSES, (b, 1, n, n), generator=gen).to(device),
        K.SIZE: torch.full((b, 2), n, dtype=torch.int64, device=device),
        K.SPACING: torch.full((b, 2), 1.4, device=device),
        K.CENTER: torch.full((b, 2), n / 2.0, device=device),
        K.MEAN: torch.full((b,), 200.0, device=device),
        K.STD: torch.full((b,), 150.0, device=device),
        K.MAX: torch.full((b,), 800.0, device=device),
    }
    augmenter = presets.segmentation_train()
    times = []
    for k in range(repeats + 3):  # three untimed calls warm up kernels and allocators
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            augmenter(batch, gen)
            end.record()
            torch.cuda.synchronize(device)
            elapsed = start.elapsed_time(end)
        else:
            t0 = time.perf_counter()
            augmenter(batch, gen)
            elapsed = 1000.0 * (time.perf_counter() - t0)
        if k >= 3:
            times.append(elapsed)
    return {"device": str(device), "threads": threads, "repeats": repeats, "median_ms": statistics.median(times),
            "min_ms": min(times), "max_ms": max(times)}


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
          f"threads={args.threads}, workers={args.workers}, sspcmr on {args.device}, MONAI on cpu")
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
        results["augment_128"].append(augment_128(d, repeats, args.threads))
    if args.profile:
        results["profile"] = {mode: profile_mode(setup, args, device) for mode, setup in setups.items()}
    print_table(results, args)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
