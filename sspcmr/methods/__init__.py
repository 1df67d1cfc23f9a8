"""LightningModules: one per method (segmentation now; the pretraining methods follow)."""

from sspcmr.methods.segmentation import Segmentation

__all__ = ["Segmentation"]
