"""Preparing raw M&Ms / M&Ms-2 downloads once into a memory-mapped store (``sspcmr prepare``)."""

from .lock import FolderLock, FolderLocked
from .run import PrepareFailed, PrepareReport, prepare_dataset
from .store import PreparedDataset

__all__ = ["FolderLock", "FolderLocked", "PrepareFailed", "PrepareReport", "PreparedDataset", "prepare_dataset"]
