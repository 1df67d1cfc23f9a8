"""Everything measured on a GPU in one command: training throughput and memory of every method, the augmentation,
and the data loader's share of the step (docs/benchmarks.md#gpu).

    python benchmarks/gpu.py --out gpu-benchmark                  # on a GPU machine: data + all, about 8 minutes
    python benchmarks/gpu.py --device cpu --toy --out /tmp/toy    # the same code paths at toy size, ~30 s

1. Data: the synthetic phantom (4 M&Ms + 4 M&Ms-2 realistic subjects; toy: 2 + 2 tiny), prepared and split
   into ``--work`` (reused when already there; ``gpu_parts/workdata.py``).
2. Measurements, in priority order, each only if its estimated time still fits in ``--budget-s`` (what does
   not fit is recorded as skipped, with the reason):

   * the segment augmentation of one 128 x 256 x 256 batch (CUDA events, median);
   * per method (Segmentation fine-tuning and the eight self-supervised methods, built from their shipped
     configs with the configs' batch sizes; ``gpu_parts/specs.py``): training slices/s and peak memory
     (``torch.cuda.max_memory_allocated``) of augmentation + optimiser step on batches of the synthetic data
     (``gpu_parts/measure.py``), for the config's precision, then bf16-mixed, then the data-loading share
     (the real ``CineDataModule`` loader with the config's workers), then channels-last and ``torch.compile``
     (with ``--fast-precision``), then the remaining precisions of fp32 / fp16-mixed / bf16-mixed.

``--toy``: U-Net channels 8-64 at 64 px, batch 8, 1 warm-up + 1 timed step, one loader worker; on the CPU
fp16 / bf16 run only where oneDNN supports them natively and ``torch.compile`` only with ``--compile-on-cpu``.

Writes ``gpu_benchmark.json`` (every figure, versions, device, git commit, skipped and failed measurements) and
``gpu_benchmark.md`` (the tables for docs/benchmarks.md) into ``--out`` after every measurement, so a run cut
short keeps what it measured.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from augment_timing import time_augmentation
from gpu_parts.budget import Budget, Task
from gpu_parts.measure import native_batches, time_loading, time_steps
from gpu_parts.report import machine, markdown
from gpu_parts.specs import CONFIGS, MethodSpec, load_spec
from gpu_parts.variants import Variant, unsupported
from gpu_parts.workdata import REFERENCE_DATA, TOY_DATA, ensure_data

ALL_PRECISIONS = ("32", "16-mixed", "bf16-mixed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (defaults that depend on the device and ``--toy`` are filled in by :func:`defaults`)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--toy", action="store_true", help="toy size (small U-Net, 64 px, tiny phantom)")
    parser.add_argument("--out", type=Path, default=Path("gpu-benchmark"), help="folder for the JSON and Markdown")
    parser.add_argument("--work", type=Path, default=None,
                        help="data folder, reused when present (default: a folder in the temporary directory)")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="seconds for the measurements after the data are ready (default 420)")
    parser.add_argument("--methods", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=None, help="timed steps per variant (default 10; toy 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3; toy 1)")
    parser.add_argument("--loader-batches", type=int, default=None, help="timed loader batches (default 8; toy 2)")
    parser.add_argument("--loader-warmup", type=int, default=None, help="untimed loader batches (default 3; toy 1)")
    parser.add_argument("--workers", type=int, default=None,
                        help="loader workers (default: the config's, at most CPUs - 1; toy 1)")
    parser.add_argument("--data-workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="processes generating and preparing the data")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--fast-precision", choices=ALL_PRECISIONS, default="bf16-mixed",
                        help="precision of the channels-last and compile variants")
    parser.add_argument("--compile-on-cpu", action="store_true", help="also run torch.compile on the CPU")
    parser.add_argument("--compile-estimate-s", type=float, default=None,
                        help="seconds a compile variant is assumed to need (default 120 on cuda, 60 on the CPU)")
    parser.add_argument("--aug-repeats", type=int, default=None, help="timed augmentation calls (default 20; toy 3)")
    return defaults(parser.parse_args(argv))


def defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the defaults that depend on ``--toy`` and the device."""
    toy, cuda = args.toy, args.device == "cuda"
    for name, reference, small in (("steps", 10, 1), ("warmup", 3, 1), ("loader_batches", 8, 2),
                                   ("loader_warmup", 3, 1), ("aug_repeats", 20, 3)):
        if getattr(args, name) is None:
            setattr(args, name, small if toy else reference)
    if args.compile_estimate_s is None:
        args.compile_estimate_s = 120.0 if cuda else 60.0
    if args.workers is None and toy:
        args.workers = 1
    if args.work is None:
        args.work = Path(os.environ.get("TMPDIR", "/tmp")) / f"sspcmr-gpubench-{'toy' if toy else 'reference'}"
    return args


class Run:
    """The state of one benchmark run: the methods' specs, their cached native batches, what ran and the results."""

    def __init__(self, args: argparse.Namespace, device: torch.device, data: dict, results: dict) -> None:
        self.args, self.device, self.data, self.results = args, device, data, results
        self.specs = {name: load_spec(name, args.toy) for name in args.methods}
        self.natives: dict[str, list[dict]] = {}
        self.seen: dict[str, float] = {}  # longest completed non-compile task per method, in seconds
        self.done: set[tuple[str, Variant]] = set()

    def write(self) -> None:
        """Write the JSON and the Markdown as they stand."""
        out = self.args.out
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_benchmark.json").write_text(json.dumps(self.results, indent=1, default=str))
        (out / "gpu_benchmark.md").write_text(markdown(self.results) + "\n")

    def estimate(self, method: str, extra: float = 0.0) -> float:
        """Seconds a task of ``method`` is expected to take: its longest so far, else the mean of all methods'."""
        if method in self.seen:
            return self.seen[method] + extra
        typical = sum(self.seen.values()) / len(self.seen) if self.seen else 0.0
        return typical + extra

    def config_variant(self, spec: MethodSpec) -> Variant:
        """The config's precision, or fp32 where the device does not support it."""
        wanted = Variant(spec.precision)
        return wanted if unsupported(wanted, self.device, True) is None else Variant("32")

    def step_task(self, spec: MethodSpec, variant: Variant) -> Task:
        def run() -> dict[str, Any]:
            if spec.name not in self.natives:
                self.natives[spec.name] = native_batches(spec, self.data, count=2)
            return time_steps(spec, variant, self.natives[spec.name], self.device, self.args.steps, self.args.warmup)

        def estimate() -> float:
            base = self.estimate(spec.name)
            return max(self.args.compile_estimate_s, 2 * base) if variant.compile else base

        return Task("steps", f"{spec.name} {variant.name}", run, estimate, spec.name)

    def loading_task(self, spec: MethodSpec) -> Task:
        workers = spec.data["num_workers"] if self.args.workers is None else self.args.workers
        workers = max(0, min(workers, (os.cpu_count() or 1) - 1))
        variant = self.config_variant(spec)

        def run() -> dict[str, Any]:
            return time_loading(spec, variant, self.data, self.device, workers, self.args.loader_batches,
                                self.args.loader_warmup)

        return Task("loading", f"{spec.name} {variant.name}", run,
                    lambda: self.estimate(spec.name, extra=5.0 if self.device.type == "cuda" else 1.0), spec.name)

    def variants_in_priority(self) -> list[tuple[str, list[Variant]]]:
        """The step variants by round: config precision, bf16, (loading), channels-last, compile, the rest."""
        fast = self.args.fast_precision
        if unsupported(Variant(fast), self.device, True):
            fast = "32"  # channels-last and compile are still worth measuring without a fast precision
        return [("config", [self.config_variant(s) for s in self.specs.values()]),
                ("bf16", [Variant("bf16-mixed")] * len(self.specs)),
                ("loading", []),
                ("channels-last", [Variant(fast, channels_last=True)] * len(self.specs)),
                ("compile", [Variant(fast, compile=True)] * len(self.specs)),
                *((f"rest-{p}", [Variant(p)] * len(self.specs)) for p in ALL_PRECISIONS)]

    def tasks(self, budget: Budget) -> list[Task]:
        """Every measurement in priority order, each variant once per method; unsupported ones are skipped now."""
        tasks: list[Task] = [Task("augmentation", "segment recipe", self.augmentation, lambda: 5.0)]
        for round_name, variants in self.variants_in_priority():
            if round_name == "loading":
                tasks += [self.loading_task(spec) for spec in self.specs.values()]
                continue
            for spec, variant in zip(self.specs.values(), variants, strict=True):
                if (spec.name, variant) in self.done:
                    continue
                self.done.add((spec.name, variant))
                task, reason = self.step_task(spec, variant), unsupported(variant, self.device,
                                                                          self.args.compile_on_cpu)
                if reason:
                    budget.skip(task, reason)
                else:
                    tasks.append(task)
        return tasks

    def augmentation(self) -> dict[str, Any]:
        batch, px = (16, 64) if self.args.toy else (128, 256)
        return time_augmentation(self.device, self.args.aug_repeats, torch.get_num_threads(), batch=batch,
                                 native=px, output_size=px)

    def execute(self, budget: Budget) -> None:
        """Run the tasks in order within the budget, writing the results after each."""
        self.results["skipped"], self.results["errors"] = budget.skipped, budget.errors
        for task in self.tasks(budget):
            failures = len(budget.errors)
            row = budget.attempt(task)
            if len(budget.errors) > failures:  # its module and batches must not weigh on the next measurement
                gc.collect()
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
            if row is None:
                self.write()
                continue
            if task.method and not row.get("compile"):  # compile times say nothing of the next variant's
                self.seen[task.method] = max(self.seen.get(task.method, 0.0), row["seconds"])
            self.results[task.kind].append(row)
            print(summary(task, row), flush=True)
            self.write()


def summary(task: Task, row: dict[str, Any]) -> str:
    """One progress line."""
    if task.kind == "steps":
        peak = f", peak {row['peak_gib']:.2f} GiB" if row["peak_gib"] is not None else ""
        return (f"{task.label}: {row['slices_per_s']:.1f} slices/s ({row['step_ms']:.1f} ms/step, augment "
                f"{row['augment_ms']:.1f} ms){peak} [{row['seconds']:.1f} s]")
    if task.kind == "loading":
        return (f"loading {task.label}: {100 * row['data_share']:.1f}% waiting for data, {row['workers']} workers "
                f"[{row['seconds']:.1f} s]")
    return f"augmentation: median {row['median_ms']:.1f} ms [{row['seconds']:.1f} s]"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the results (also written to ``--out``)."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but no CUDA device is available (use --device cpu --toy)")
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True  # as nnU-Net-style training runs; the warm-up steps absorb the tuning
    started = time.monotonic()
    results: dict[str, Any] = {"toy": args.toy, "args": vars(args), "machine": machine(device), "data": None,
                               "augmentation": [], "steps": [], "loading": [], "skipped": [], "errors": [],
                               "budget_s": args.budget_s, "finished": False}
    results["data"] = ensure_data(args.work, TOY_DATA if args.toy else REFERENCE_DATA, args.data_workers)
    print(f"data: {results['data']['prepared']} ({'reused' if results['data']['reused'] else 'made'} in "
          f"{results['data']['seconds']:.1f} s)", flush=True)
    run = Run(args, device, results["data"], results)
    # Every measurement ends with gc.collect() (a finished module must not count in the next one's peak memory);
    # with torch and Lightning loaded that takes about a second, unless the objects alive now are left out.
    gc.collect()
    gc.freeze()
    try:
        run.execute(Budget(args.budget_s))
    finally:
        gc.unfreeze()  # a caller that goes on (the tests) gets its collector back as it was
    results.update(finished=True, elapsed_s=time.monotonic() - started, loadavg_end=os.getloadavg())
    run.write()
    print()
    print(markdown(results))
    print(f"wrote {args.out / 'gpu_benchmark.json'} and gpu_benchmark.md in {results['elapsed_s']:.0f} s")
    return results


if __name__ == "__main__":
    main()
