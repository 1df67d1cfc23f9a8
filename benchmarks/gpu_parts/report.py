"""What benchmarks/gpu.py writes: the versions and machine, and the Markdown tables for docs/benchmarks.md."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[2]


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_revision() -> dict[str, Any] | None:
    """The checkout's commit and whether it has local changes (None outside a git checkout)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict[str, Any]:
    """Versions, the device and the CPU."""
    info: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "python": platform.python_version(),
        "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "lightning": _version("lightning"), "numpy": _version("numpy"), "monai": _version("monai"),
        "lightly": _version("lightly"), "sspcmr": _version("sspcmr"), "git": git_revision(),
        "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
        "device": str(device), "loadavg_start": os.getloadavg(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(device_name=props.name, device_memory_gib=props.total_memory / 2**30,
                    capability=f"{props.major}.{props.minor}")
    else:
        info["device_name"] = "cpu"
    return info


def _cell(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def step_table(rows: list[dict]) -> list[str]:
    """Training steps: one row per method and variant."""
    lines = ["| method | variant | batch | views / slice | ms / step | slices / s | augment ms | "
             "slices / s with augment | peak GiB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['variant']} | {r['batch']} | {r['views_per_slice']} | "
                     f"{_cell(r['step_ms'])} | {_cell(r['slices_per_s'])} | {_cell(r['augment_ms'])} | "
                     f"{_cell(r['slices_per_s_with_augment'])} | {_cell(r['peak_gib'], 2)} |")
    return lines


def loading_table(rows: list[dict]) -> list[str]:
    """Data loading: one row per method."""
    lines = ["| method | variant | workers | batch | wait ms / batch | step ms / batch | data share | slices / s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['variant']} | {r['workers']} | {r['batch']} | "
                     f"{_cell(r['wait_ms_per_batch'])} | {_cell(r['step_ms_per_batch'])} | "
                     f"{100 * r['data_share']:.1f}% | {_cell(r['slices_per_s'])} |")
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown: what ran where, the tables, what was skipped or failed."""
    meta, scale = results["machine"], "toy size" if results["toy"] else "reference size"
    load = ", ".join(f"{v:.1f}" for v in meta["loadavg_start"])
    out = [f"Device: {meta['device_name']} ({scale}); torch {meta['torch']} (CUDA {meta['cuda']} build), "
           f"{meta['threads']} CPU thread(s), {meta['cpu_count']} CPUs ({meta['cpu']}), load average at the start "
           f"{load}; commit {(meta.get('git') or {}).get('commit', 'unknown')[:12]}.", ""]
    if results["steps"]:
        out += ["Training steps (augmentation and step timed apart, median after warm-up):", "",
                *step_table(results["steps"]), ""]
    if results["loading"]:
        out += ["Data loading (the real training DataLoader with workers; wait for the next batch against "
                "transfer + augmentation + step):", "", *loading_table(results["loading"]), ""]
    for a in results["augmentation"]:
        out += [f"Augmentation alone, {a['batch']} x {a['native_px']}^2 -> {a['output_px']}^2 (segment recipe with "
                f"labels), {a['device']}: median {a['median_ms']:.1f} ms of {a['repeats']} "
                f"({a['min_ms']:.1f}-{a['max_ms']:.1f}).", ""]
    if results["skipped"]:
        out += ["Skipped:", "", *(f"* {s['kind']} {s['label']}: {s['reason']}" for s in results["skipped"]), ""]
    if results["errors"]:
        out += ["Failed:", "", *(f"* {e['kind']} {e['label']}: {e['error']}" for e in results["errors"]), ""]
    return "\n".join(out)
