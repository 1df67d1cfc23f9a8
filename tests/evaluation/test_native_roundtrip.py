"""docs/reference.md#check-evaluation: the evaluation geometry and its inverse are a round trip.

Each test volume's ground truth is resampled to the network grid exactly as ``test`` resamples the image
(``CineDataModule.resample(item)``: image-centred, no augmentation, nearest labels, one-hot),
used as logits (one-hot x 10) and brought back with :func:`sspcmr.evaluation.native.labels_to_native`
(bicubic, border padding, argmax). Against the native labels every class must come back with a Dice near 1;
how near depends on the output spacing relative to the native one (tiny subjects: 2.5-3.2 mm):

* 256 px x 1.25 mm (the reference grid, finer than native): > 0.995 (measured 1.0);
* 128 px x 2 mm: > 0.98 (measured >= 0.995);
* 64 px x 4 mm (coarser than native, thin myocardium): > 0.84 (measured >= 0.86).

Each of these fields of view (256-320 mm) covers every native one (<= 237 mm); 64 px x 1.25 mm (80 mm) does
not, and structures outside it are lost.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sspcmr.data import keys as K
from sspcmr.data.datamodule import CineDataModule
from sspcmr.evaluation.native import labels_to_native, logits_to_native

CLASSES = (0, 1, 2, 3)


pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # tests/conftest.py


def _volumes(prepared_tiny, size: int, spacing: float) -> tuple[CineDataModule, list[dict]]:
    root, split = prepared_tiny
    data = CineDataModule(str(root), str(split), mode="volumes", output_size=size, output_spacing=spacing,
                          batch_size=4, num_workers=0)
    data.setup("test")
    items = [data.datasets["test"][i] for i in range(len(data.datasets["test"]))]
    return data, items


def _dice(pred: torch.Tensor, gt: torch.Tensor) -> list[float]:
    scores = []
    for c in CLASSES:
        p, g = pred == c, gt == c
        total = int(p.sum() + g.sum())
        scores.append(1.0 if total == 0 else 2 * int((p & g).sum()) / total)
    return scores


def _round_trip(data: CineDataModule, item: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(labels back on the native grid (Z, H, W), native labels (Z, H, W), the evaluation batch)."""
    out = data.resample(item)
    native = out[K.NATIVE_LABEL]
    height, width = (int(v) for v in out[K.SIZE][0])
    pred = labels_to_native(10 * out[K.LABEL], out[K.THETA], out[K.SIZE], tuple(native.shape[-2:]))
    return pred, native[:, 0, :height, :width], out


@pytest.mark.parametrize("size, spacing, tolerance", [(256, 1.25, 0.995), (128, 2.0, 0.98), (64, 4.0, 0.84)])
def test_ground_truth_survives_the_evaluation_geometry(prepared_tiny, size, spacing, tolerance):
    data, items = _volumes(prepared_tiny, size, spacing)
    assert len(items) == 10  # 5 test subjects x (ED, ES)
    for item in items:
        name = f"{item[K.SUBJECT][0]} {item[K.PHASE]}"
        z = item[K.IMAGE].shape[0]
        native_size = item[K.SIZE][0]
        # The premise: the output field of view covers the native one on both axes.
        assert size * spacing >= float((native_size * item[K.SPACING][0]).max()), name
        assert set(item[K.LABEL].unique().tolist()) == set(CLASSES), name

        pred, gt, out = _round_trip(data, item)
        height, width = (int(v) for v in native_size)
        assert out[K.LABEL].shape == (z, 4, size, size) and out[K.THETA].shape == (z, 2, 3)
        assert pred.shape == gt.shape == (z, height, width) and pred.dtype == torch.int64, name
        logits = logits_to_native(10 * out[K.LABEL], out[K.THETA], out[K.SIZE], tuple(out[K.NATIVE_LABEL].shape[-2:]))
        assert logits.shape == (z, 4, height, width), name
        dice = _dice(pred, gt)
        assert min(dice) > tolerance, (name, dice)


def test_padded_canvas_gives_the_same_native_labels(prepared_tiny):
    """Slices zero-padded into a larger canvas (as in a mixed-size batch) come back identically."""
    data, items = _volumes(prepared_tiny, 128, 2.0)
    for item in items[::3]:
        reference, gt, _ = _round_trip(data, item)
        padded = dict(item)
        padded[K.IMAGE] = F.pad(item[K.IMAGE], (0, 7, 0, 13))
        padded[K.LABEL] = F.pad(item[K.LABEL], (0, 7, 0, 13))
        pred, padded_gt, out = _round_trip(data, padded)
        assert out[K.NATIVE_LABEL].shape[-2:] == (gt.shape[-2] + 13, gt.shape[-1] + 7)
        assert torch.equal(padded_gt, gt)
        assert pred.shape == reference.shape
        assert (pred != reference).float().mean() < 1e-3  # bicubic rounding at a few label edges at most


def test_a_field_of_view_smaller_than_the_image_loses_structures(prepared_tiny):
    """64 px x 1.25 mm = 80 mm: the test above would fail with it (why its spacings are chosen)."""
    data, items = _volumes(prepared_tiny, 64, 1.25)
    worst = min(min(_dice(*_round_trip(data, item)[:2])) for item in items)
    assert worst < 0.5
