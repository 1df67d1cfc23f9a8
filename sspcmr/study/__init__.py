"""Experiment grids: ``sspcmr study``."""
