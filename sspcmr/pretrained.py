"""Pretrained sspcmr weights from Python: load a backbone into your network, and read the grid it saw.

A *source* is a checkpoint written by any sspcmr method (``.ckpt``, with its ``sspcmr_manifest``) or a
backbone written by ``sspcmr export-backbone`` (``.pt``, reference key names, its manifest in ``.pt.json``
beside it). Both are read as data only (``weights_only=True``). :func:`load_backbone` applies exactly the
checks and writes exactly the report of fine-tuning with ``--model.init_from``
(:func:`sspcmr.methods.transfer.load_transfer`); :func:`checkpoint_grid` tells the resampling grid the
network was trained on, which a data module or ``predict_nifti`` must use again (docs/api.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from sspcmr.methods.transfer import MANIFEST_KEY, TransferMode, TransferReport, load_file, load_transfer

GRID_KEYS = ("output_size", "output_spacing")


def load_backbone(module: nn.Module, path: str | Path, parts: TransferMode = "encoder",
                  prefix: str = "") -> TransferReport:
    """Load a pretrained encoder (and decoder) into ``module`` strictly, as fine-tuning does.

    Every tensor of the chosen parts must exist in both the source and ``module`` with the same shape, and
    the source may hold no other tensor under those parts: anything else is an error naming the keys, and
    nothing is loaded. Heads are never loaded. A checkpoint's manifest must offer ``parts`` and, when the
    target is a :class:`~sspcmr.models.unet.UNet`, describe the same architecture.

    Args:
        module: a :class:`~sspcmr.models.unet.UNet`, or any module whose state dict holds the U-Net's
            ``encoder.`` (and ``decoder.``) keys under ``prefix``.
        path: a sspcmr checkpoint (``.ckpt``) or an exported backbone (``.pt``).
        parts: ``encoder`` or ``encoder+decoder`` (for sources that trained a decoder: MIM, inpainting,
            segmentation, multitask with one of them).
        prefix: where the U-Net's keys start in ``module.state_dict()``: ``""`` for a U-Net itself, ``"net."``
            for a LightningModule holding ``self.net = UNet(...)``.

    Returns:
        The :class:`~sspcmr.methods.transfer.TransferReport`: tensors loaded and kept at initialisation
        (``module``'s key names), the source's manifest and sha256.

    Raises:
        DataError: a missing, unreadable or code-carrying file.
        ValueError: an unknown ``parts``, a ``prefix`` without U-Net keys under it, a part the source does
            not provide, another architecture, or any missing, unexpected or mis-shaped key.
    """
    if prefix and not prefix.endswith("."):
        raise ValueError(f"load_backbone: prefix must be empty or end with '.' (e.g. 'net.'); got {prefix!r}")
    keys = list(module.state_dict())
    if not any(key.startswith(prefix + "encoder.") for key in keys):
        found = sorted({key[: key.index("encoder.")] for key in keys if "encoder." in key})
        hint = f"its encoder keys start with {found}" if found else "it has no keys containing 'encoder.'"
        raise ValueError(f"load_backbone: {type(module).__name__} has no U-Net encoder under prefix {prefix!r}; "
                         f"{hint}")
    return load_transfer(module, path, parts, prefix=prefix, context="load_backbone")


def read_manifest(path: str | Path) -> dict[str, Any]:
    """What a source records about its training: ``manifest`` (None if absent), and for a checkpoint the
    method's ``hyper_parameters`` and the data module's ``datamodule_hyper_parameters``.

    An exported backbone's manifest is its ``.json`` file written beside it by ``sspcmr export-backbone``.

    Raises:
        DataError: a missing, unreadable or code-carrying file.
        ValueError: an exported backbone whose ``.json`` is missing or is not JSON.
    """
    path = Path(path)
    content = load_file(path, "read_manifest")
    if isinstance(content, dict) and "state_dict" in content:
        manifest = content.get(MANIFEST_KEY)
        return {"manifest": manifest if isinstance(manifest, dict) else None,
                "hyper_parameters": dict(content.get("hyper_parameters") or {}),
                "datamodule_hyper_parameters": dict(content.get("datamodule_hyper_parameters") or {})}
    beside = path.with_name(path.name + ".json")
    try:
        manifest = json.loads(beside.read_text())
    except FileNotFoundError:
        raise ValueError(f"read_manifest: {path} is a plain state dict and {beside.name}, the manifest "
                         "`sspcmr export-backbone` writes beside it, is missing") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"read_manifest: cannot read {beside} as JSON ({error})") from None
    return {"manifest": manifest, "hyper_parameters": {}, "datamodule_hyper_parameters": {}}


def checkpoint_grid(path: str | Path) -> dict[str, Any]:
    """``{"output_size": px, "output_spacing": mm}``: the grid the network in ``path`` was trained on.

    Read from the manifest's ``preprocessing``, else (checkpoints written without a data module) from the
    method's and then the data module's hyperparameters.

    Raises:
        DataError: a missing, unreadable or code-carrying file.
        ValueError: a source that records no grid (pass ``output_size`` and ``output_spacing`` yourself).
    """
    recorded = read_manifest(path)
    candidates = [(recorded["manifest"] or {}).get("preprocessing") or {}, recorded["hyper_parameters"],
                  recorded["datamodule_hyper_parameters"]]
    for candidate in candidates:
        if all(candidate.get(key) is not None for key in GRID_KEYS):
            return {"output_size": int(candidate["output_size"]),
                    "output_spacing": float(candidate["output_spacing"])}
    raise ValueError(f"checkpoint_grid: {path} records no output_size / output_spacing; "
                     "pass the grid it was trained on yourself")


def check_grid(path: str | Path, grid: dict[str, Any], given: dict[str, Any], what: str) -> None:
    """Refuse ``given`` values of ``output_size`` / ``output_spacing`` that differ from ``path``'s ``grid``,
    naming both grids (``what`` names the side that would resample differently)."""
    size = given.get("output_size", grid["output_size"])
    spacing = given.get("output_spacing", grid["output_spacing"])
    if int(size) != grid["output_size"] or abs(float(spacing) - grid["output_spacing"]) > 1e-6:
        raise ValueError(f"{path} was trained at {grid['output_size']} px / {grid['output_spacing']} mm but "
                         f"{what} asks for {size} px / {spacing} mm; leave output_size and output_spacing out "
                         "to use the checkpoint's grid")
