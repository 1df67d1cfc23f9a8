"""Preparing raw M&Ms / M&Ms-2 downloads once into a memory-mapped store (``sspcmr prepare``; the store itself
is :mod:`sspcmr.data.store`)."""

from .lock import FolderLock, FolderLocked
from .run import PrepareFailed, PrepareReport, prepare_dataset

__all__ = ["FolderLock", "FolderLocked", "PrepareFailed", "PrepareReport", "prepare_dataset"]
