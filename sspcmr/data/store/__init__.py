"""The prepared data set on disk: its format (:mod:`.format`), how ``sspcmr prepare`` writes it
(:mod:`.writer`) and how training, evaluation and ``prepare`` itself read it back (:mod:`.reader`)."""

from .reader import PreparedDataset

__all__ = ["PreparedDataset"]
