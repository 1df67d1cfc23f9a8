"""Loading pretrained weights into the segmentation U-Net: exact prefixes, strict, reported.

A source is either a Lightning checkpoint written by sspcmr (its ``sspcmr_manifest`` names the
prefix under which the U-Net's ``encoder.`` / ``decoder.`` weights live) or a plain state dict
exported with the reference key names (``encoder.enc_blocks...``; prefix ""). Weights are selected
by exact ``startswith`` on ``<prefix>encoder.`` (and ``<prefix>decoder.``); every target key of the
selected parts must be present with the same shape, and no other source key under those parts may
exist. Heads are never loaded. Nothing is guessed and nothing is half-loaded: any mismatch is an
error naming the keys.

The target is a U-Net or any module holding one under a prefix (``net.`` for ``self.net = UNet(...)``):
:func:`sspcmr.pretrained.load_backbone` is the public entry, ``Segmentation(init_from=...)`` the fine-tuning one.
"""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from sspcmr.data.errors import DataError, MachineError, is_machine_failure
from sspcmr.data.store.reader import sha256_file as file_sha256  # provenance: the pretraining file's hash
from sspcmr.models.unet import REFERENCE_HEAD_PREFIX, UNetConfig

TransferMode = Literal["encoder", "encoder+decoder"]
MANIFEST_KEY = "sspcmr_manifest"
# The name errors give a source when it came through fine-tuning (``Segmentation(init_from=...)`` and
# ``--model.init_from``): their hints are then command-line options.
CLI_CONTEXT = "init_from"
MANIFEST_VERSION = 1
PARTS: dict[str, tuple[str, ...]] = {"encoder": ("encoder.",), "encoder+decoder": ("encoder.", "decoder.")}
# Architecture fields that must agree for weights to mean the same thing (out_channels and num_heads only
# shape the heads, which never transfer).
ARCHITECTURE_FIELDS = ("in_channels", "channels", "norm", "negative_slope")
# What the images looked like to the pretrained network (sspcmr's only intensity normalisation is the
# subject-level z-score over the whole 4D cine, docs/reference.md#standardisation).
NORMALISATION = "subject z-score over the 4D cine"


def build_manifest(method: str, prefix: str, transferable: tuple[str, ...], unet: UNetConfig,
                   preprocessing: dict[str, Any] | None, init_from: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest stored under ``sspcmr_manifest`` in every sspcmr checkpoint.

    Args:
        method: the method's name (``simclr``, ``pcl``, ``dino``, ``mim``, ``segmentation``).
        prefix: where the U-Net's ``encoder.`` (and ``decoder.``) keys live in the checkpoint's state dict.
        transferable: the parts a fine-tuning may take, ``("encoder",)`` or ``("encoder", "decoder")``.
        unet: the network's configuration.
        preprocessing: output size and spacing the network saw (None when unknown, e.g. no data module).
        init_from: provenance of the weights a fine-tuning started from (:meth:`TransferReport.provenance`):
            recorded, never read back as a file.
    """
    from sspcmr import __version__

    unet_fields = dataclasses.asdict(unet)
    unet_fields["channels"] = list(unet.channels)
    return {"version": MANIFEST_VERSION, "sspcmr": __version__, "method": method, "prefix": prefix,
            "transferable": list(transferable), "unet": unet_fields,
            "preprocessing": None if preprocessing is None else {"normalisation": NORMALISATION, **preprocessing},
            "init_from": init_from}


def check_manifest(manifest: dict[str, Any], unet: UNetConfig, mode: str, path: str | Path,
                   context: str = CLI_CONTEXT) -> None:
    """Refuse a transfer the source cannot provide or an architecture that differs, with the fix to apply
    (command-line options for ``context="init_from"``, else Python arguments)."""
    transferable = manifest.get("transferable")
    wanted = PARTS[mode]
    cli = context == CLI_CONTEXT
    if transferable is not None and not all(part.rstrip(".") in transferable for part in wanted):
        method, provided = manifest.get("method", "this method"), "+".join(transferable)
        fix = f"--model.transfer {provided} instead of {mode}" if cli else f"parts={provided!r} instead of {mode!r}"
        raise ValueError(f"{context}: {path} ({method}) provides only {provided}; use {fix}")
    source = manifest.get("unet")
    if not isinstance(source, dict):
        return
    own = dataclasses.asdict(unet)
    own["channels"] = list(unet.channels)
    differ = [(name, source.get(name), own[name]) for name in ARCHITECTURE_FIELDS
              if name in source and _normal(source[name]) != _normal(own[name])]
    if differ:
        if cli:
            fixes = " ".join(f"--model.{name} {_cli(value)}" for name, value, _ in differ if name != "in_channels")
        else:
            fixes = "UNetConfig(" + ", ".join(f"{name}={_normal(value)!r}" for name, value, _ in differ) + ")"
        details = "; ".join(f"{name}: pretrained {value!r}, here {mine!r}" for name, value, mine in differ)
        raise ValueError(f"{context}: {path} was pretrained with another U-Net ({details}). "
                         f"Build the same network{': ' + fixes if fixes else ''}")


def check_preprocessing(manifest: dict[str, Any], output_size: int, output_spacing: float,
                        path: str | Path) -> None:
    """Refuse fine-tuning on images resampled differently from pretraining (features are scale-specific)."""
    source = manifest.get("preprocessing")
    if not isinstance(source, dict):
        return
    differ = []
    if "output_spacing" in source and abs(float(source["output_spacing"]) - float(output_spacing)) > 1e-6:
        differ.append(("output_spacing", source["output_spacing"], output_spacing))
    if "output_size" in source and int(source["output_size"]) != int(output_size):
        differ.append(("output_size", source["output_size"], output_size))
    if source.get("normalisation", NORMALISATION) != NORMALISATION:
        raise ValueError(f"init_from: {path} was pretrained with normalisation {source['normalisation']!r}, "
                         f"sspcmr fine-tunes with {NORMALISATION!r}")
    if differ:
        details = "; ".join(f"{name}: pretrained {value}, here {mine}" for name, value, mine in differ)
        fixes = " ".join(f"--data.{name} {value}" for name, value, _ in differ)
        raise ValueError(f"init_from: {path} was pretrained on other images ({details}). Use {fixes}, or pass "
                         "--model.check_preprocessing false to fine-tune anyway")


def _normal(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _cli(value: Any) -> str:
    return "[" + ",".join(str(v) for v in value) + "]" if isinstance(value, (list, tuple)) else str(value)


@dataclass
class TransferReport:
    """What a transfer loaded: the source (and its content hash), the mode, keys loaded and keys left at
    initialisation."""

    source: str
    mode: str
    loaded: list[str] = field(default_factory=list)
    kept_initial: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (written next to the fine-tuning run's logs)."""
        return {"source": self.source, "sha256": self.sha256, "mode": self.mode, "loaded": self.loaded,
                "kept_initial": self.kept_initial, "manifest": self.manifest}

    def provenance(self) -> dict[str, Any]:
        """What a fine-tuned checkpoint records about its start: the file (absolute path and sha256), the
        mode, the source method and how many tensors were loaded. Kept for the reader; never re-read."""
        method = (self.manifest or {}).get("method")
        return {"path": str(Path(self.source).resolve()), "sha256": self.sha256, "transfer": self.mode,
                "method": method, "loaded_tensors": len(self.loaded)}

    def __str__(self) -> str:
        return (f"transfer from {self.source} ({self.mode}): loaded {len(self.loaded)} tensors, "
                f"{len(self.kept_initial)} left at initialisation ({_summarise(self.kept_initial)})")


def _summarise(keys: list[str]) -> str:
    parts = sorted({k.split(".")[0] for k in keys})
    return ", ".join(f"{p}.*" for p in parts) or "none"


def load_file(path: str | Path, context: str) -> object:
    """Read a checkpoint or state-dict file as data only (``weights_only=True``), on the CPU.

    Checkpoints are data, never code: ``torch.load`` with ``weights_only=True`` unpickles only tensors
    and plain containers and types (dict, list, tuple, str, numbers, ``OrderedDict``), which is all
    sspcmr and Lightning write. A file whose pickle asks for anything else (a class, a function, a
    shell command) is refused before any of it runs.

    Raises:
        DataError: missing, truncated, foreign or code-carrying files, in one line that names
            ``context`` (the option) and the file.
        MachineError: the file exists but the machine cannot read it (permission, I/O error).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{context}: {path} does not exist")
    try:
        with path.open("rb") as handle:
            return torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message for refused globals spans many lines; keep the first that names the culprit.
        detail = next((line.strip() for line in str(error).splitlines() if "GLOBAL" in line or "global" in line),
                      str(error).splitlines()[0] if str(error) else "")
        raise DataError(f"{context}: {path} is refused: it holds objects other than tensors and plain data, and "
                        f"sspcmr loads checkpoints as data only, never code ({detail})") from None
    except OSError as error:
        if is_machine_failure(error):
            raise MachineError("reading", path, error) from None
        raise DataError(f"{context}: cannot read {path} as a PyTorch checkpoint ({_first_line(error)})") from None
    except Exception as error:  # torch raises many types for corrupt files
        raise DataError(f"{context}: cannot read {path} as a PyTorch checkpoint ({_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_source(path: str | Path, context: str = CLI_CONTEXT) -> tuple[dict[str, torch.Tensor], str,
                                                                      dict[str, Any] | None]:
    """The state dict, U-Net prefix and manifest (None for a plain state dict) of a checkpoint or exported
    backbone file; errors start with ``context`` (the option or function that named the file)."""
    path = Path(path)
    content = load_file(path, context)
    if isinstance(content, dict) and "state_dict" in content:
        manifest = content.get(MANIFEST_KEY)
        if not isinstance(manifest, dict) or "prefix" not in manifest:
            raise ValueError(f"{context}: {path} is a Lightning checkpoint without an sspcmr manifest; export the "
                             "backbone with reference key names (encoder.*, decoder.*) to load it")
        return content["state_dict"], str(manifest["prefix"]), manifest
    if isinstance(content, dict) and all(isinstance(v, torch.Tensor) for v in content.values()):
        return content, "", None
    raise ValueError(f"{context}: {path} holds neither a checkpoint nor a state dict")


def load_transfer(net: nn.Module, path: str | Path, mode: TransferMode = "encoder", prefix: str = "",
                  context: str = CLI_CONTEXT) -> TransferReport:
    """Load the ``mode`` parts of ``path`` into ``net`` strictly; returns the report.

    A source with a manifest must provide the parts asked for and have been built with the same U-Net
    architecture (the config of the :class:`~sspcmr.models.unet.UNet` at ``prefix``, when it is one); the
    tensors themselves are then checked key by key.

    Args:
        net: the module to load into: a U-Net (``prefix=""``) or any module whose state dict holds the
            U-Net's keys under ``prefix`` (``"net."`` for ``self.net = UNet(...)``).
        path: a sspcmr checkpoint (``.ckpt``) or an exported backbone (``.pt``).
        mode: ``encoder`` or ``encoder+decoder``; heads are never loaded.
        prefix: where ``encoder.`` / ``decoder.`` live in ``net``'s state dict ("" or ending in ``.``).
        context: how errors name the caller: ``init_from`` (fine-tuning, the command line's options in the
            hints) or a Python function's name (its arguments in the hints).

    Raises:
        ValueError: unknown mode, unreadable source, a part the source does not provide, another
            architecture, or any missing, unexpected or mis-shaped key.
    """
    option = "transfer" if context == CLI_CONTEXT else "parts"
    if mode not in PARTS:
        raise ValueError(f"{option} must be one of {sorted(PARTS)}; got {mode!r}")
    source, source_prefix, manifest = read_source(path, context)
    try:
        unet = net.get_submodule(prefix.rstrip("."))  # "" is net itself
    except AttributeError:
        unet = None  # no module there: the key check below says what is missing
    if manifest is not None and isinstance(getattr(unet, "config", None), UNetConfig):
        check_manifest(manifest, unet.config, mode, path, context)
    target = net.state_dict()
    parts = tuple(prefix + part for part in PARTS[mode])
    wanted = {k: v for k, v in target.items() if k.startswith(parts)}
    # Reference-named sources keep their heads under decoder.output_convs.*: heads, never loaded.
    given = {prefix + k[len(source_prefix):]: v for k, v in source.items()
             if k.startswith(source_prefix) and k[len(source_prefix):].startswith(PARTS[mode])
             and not k[len(source_prefix):].startswith(REFERENCE_HEAD_PREFIX)}
    _check_keys(wanted, given, f"{context}: {path} does not fit this U-Net for {option}={mode!r}")
    merged = dict(target)
    merged.update(given)
    net.load_state_dict(merged, strict=True)
    return TransferReport(str(path), mode, loaded=sorted(given), kept_initial=sorted(set(target) - set(given)),
                          manifest=manifest, sha256=file_sha256(path))


def _check_keys(wanted: dict[str, torch.Tensor], given: dict[str, torch.Tensor], failure: str) -> None:
    """Raise ``failure`` with the missing, unexpected and mis-shaped keys, if there are any."""
    missing = sorted(set(wanted) - set(given))
    unexpected = sorted(set(given) - set(wanted))
    shapes = sorted(k for k in set(wanted) & set(given) if tuple(wanted[k].shape) != tuple(given[k].shape))
    if missing or unexpected or shapes:
        examples = [(k, tuple(given[k].shape), tuple(wanted[k].shape)) for k in shapes[:2]]
        details = [f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                   f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "",
                   f"{len(shapes)} with other shapes (e.g. {examples})" if shapes else ""]
        raise ValueError(failure + ": " + "; ".join(d for d in details if d)
                         + ". Check channels / stages against the pretraining run.")
