"""Inference with a segmentation model.

:mod:`.volume`: labels of one whole volume on the prepared grid (head 0, inverse resampling, argmax), the
one path every entry point takes; :mod:`.nifti`: the same on plain NIfTI files, written back on their own
grid; :mod:`.segment`: the ``sspcmr segment`` command's file handling.
"""
