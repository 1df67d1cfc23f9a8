"""Data: the synthetic phantom (``sspcmr.phantom``), preparation of raw downloads
(``sspcmr.data.prepare``), subject splits (``sspcmr.data.splits``) and the ``CineDataModule``.

Heavy imports (torch, Lightning) happen only when the data module is used.
"""

from __future__ import annotations

__all__ = ["CineDataModule", "PreparedDataset", "prepare_dataset"]


def __getattr__(name: str):
    if name == "CineDataModule":
        from .datamodule import CineDataModule

        return CineDataModule
    if name == "PreparedDataset":
        from .store import PreparedDataset

        return PreparedDataset
    if name == "prepare_dataset":
        from .prepare import prepare_dataset

        return prepare_dataset
    raise AttributeError(f"module 'sspcmr.data' has no attribute {name!r}")
