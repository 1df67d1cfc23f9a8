"""sspcmr: self-supervised pretraining for cardiac MR cine segmentation.

The main classes and functions are importable from here (``from sspcmr import UNet, load_backbone``); they
load on first use (PEP 562), so ``import sspcmr`` and ``sspcmr --version`` do not import torch.
docs/api.md describes them with examples.
"""

import importlib as _importlib

__version__ = "0.1.0"

# Public name -> module defining it. Each module is imported on first access only.
_EXPORTS = {
    "CineDataModule": "sspcmr.data.datamodule",
    "UNet": "sspcmr.models.unet",
    "UNetConfig": "sspcmr.models.unet",
    "Segmentation": "sspcmr.methods.segmentation",
    "SimCLR": "sspcmr.methods.simclr",
    "PCL": "sspcmr.methods.pcl",
    "DINO": "sspcmr.methods.dino",
    "MIM": "sspcmr.methods.mim",
    "Inpainting": "sspcmr.methods.inpainting",
    "SliceLocation": "sspcmr.methods.slice_location",
    "Orientation": "sspcmr.methods.orientation",
    "Multitask": "sspcmr.methods.multitask",
    "load_backbone": "sspcmr.pretrained",
    "checkpoint_grid": "sspcmr.pretrained",
    "read_manifest": "sspcmr.pretrained",
    "TransferReport": "sspcmr.methods.transfer",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sspcmr' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
