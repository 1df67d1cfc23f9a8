"""Per-volume Dice, HD95, ASSD and slice-level Dice: golden volumes, empty rules, MONAI/torchmetrics parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric, compute_average_surface_distance, compute_hausdorff_distance
from scipy import ndimage
from torchmetrics.functional.segmentation import dice_score

from sspcmr.evaluation.label_maps import slice_first, volume_diagonal_mm
from sspcmr.evaluation.metrics import dice_per_class, evaluate_volume, slice_dice_rows
from sspcmr.evaluation.surface import surface_distances

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


def random_labels(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """Smooth random blobs of labels 0-3 (argmax of smoothed noise)."""
    noise = np.random.default_rng(seed).standard_normal((4, *shape))
    return ndimage.gaussian_filter(noise, sigma=(0, 1, 2, 2)).argmax(0)


def one_hot(labels: np.ndarray) -> torch.Tensor:
    """(Z, H, W) labels -> (1, 4, Z, H, W) float one-hot, MONAI's layout."""
    return torch.nn.functional.one_hot(torch.as_tensor(labels), 4).permute(3, 0, 1, 2)[None].float()


# ---------------------------------------------------------------- Dice


def test_dice_golden_shifted_cube():
    gt = np.zeros((8, 10, 10), dtype=np.int64)
    pred = np.zeros_like(gt)
    gt[2:6, 2:6, 2:6] = 1  # 64 voxels
    pred[2:6, 2:6, 3:7] = 1  # shifted by one voxel along W: overlap 4 x 4 x 3 = 48
    gt[7, 0, 0] = 2  # MYO only in the ground truth
    dice = dice_per_class(pred, gt)
    assert dice[1] == pytest.approx(2 * 48 / 128)
    assert dice[2] == 0.0
    assert dice[3] == 1.0  # RV in neither


@pytest.mark.parametrize(("pred_voxels", "gt_voxels", "expected"), [(0, 0, 1.0), (0, 3, 0.0), (3, 0, 0.0)])
def test_dice_empty_rules(pred_voxels: int, gt_voxels: int, expected: float):
    pred = np.zeros((3, 4, 4), dtype=np.int64)
    gt = np.zeros_like(pred)
    pred[0, 0, :pred_voxels] = 3
    gt[2, 3, 4 - gt_voxels:] = 3 if gt_voxels else 0
    assert dice_per_class(pred, gt, classes=(3,))[3] == expected


@pytest.mark.parametrize("seed", range(4))
def test_dice_equals_monai_with_ignore_empty_false(seed: int):
    pred, gt = random_labels((5, 20, 18), seed), random_labels((5, 20, 18), seed + 100)
    if seed == 1:
        pred[pred == 3], gt[gt == 3] = 0, 0  # RV in neither: both rules give 1
    if seed == 2:
        gt[gt == 2] = 1  # MYO only predicted: both give 0
    ours = dice_per_class(pred, gt)
    metric = DiceMetric(include_background=False, ignore_empty=False, reduction="none")
    monai = metric(one_hot(pred), one_hot(gt))[0].tolist()
    assert [ours[c] for c in (1, 2, 3)] == pytest.approx(monai, abs=1e-6)


def test_monai_default_ignore_empty_differs_on_empty_ground_truth():
    # Documented difference: MONAI's default (ignore_empty=True) gives NaN where the reference gives 0 or 1.
    pred, gt = np.zeros((2, 4, 4), dtype=np.int64), np.zeros((2, 4, 4), dtype=np.int64)
    pred[0, 0, 0] = 1
    monai = DiceMetric(include_background=False, reduction="none")(one_hot(pred), one_hot(gt))[0]
    assert torch.isnan(monai).all()
    assert dice_per_class(pred, gt) == {1: 0.0, 2: 1.0, 3: 1.0}


def test_dice_equals_torchmetrics_except_both_empty():
    pred, gt = random_labels((6, 16, 16), 7), random_labels((6, 16, 16), 8)
    ours = dice_per_class(pred, gt)
    theirs = dice_score(torch.as_tensor(pred)[None], torch.as_tensor(gt)[None], num_classes=4,
                        include_background=False, average="none", input_format="index")[0]
    assert [ours[c] for c in (1, 2, 3)] == pytest.approx(theirs.tolist(), abs=1e-6)
    pred[pred == 3], gt[gt == 3] = 0, 0
    theirs = dice_score(torch.as_tensor(pred)[None], torch.as_tensor(gt)[None], num_classes=4,
                        include_background=False, average="none", input_format="index")[0]
    assert math.isnan(theirs[2].item()) and dice_per_class(pred, gt)[3] == 1.0


def test_torch_tensors_are_accepted():
    pred, gt = random_labels((4, 12, 12), 3), random_labels((4, 12, 12), 4)
    assert dice_per_class(torch.as_tensor(pred), torch.as_tensor(gt)) == dice_per_class(pred, gt)


# ---------------------------------------------------------------- surface distances


def test_surface_golden_plates_offset_by_slices():
    # One-slice plates (every voxel is surface), offset by 3 slices: every distance is 3 * dz.
    gt = np.zeros((8, 12, 12), dtype=np.int64)
    pred = np.zeros_like(gt)
    gt[2, 3:8, 3:9] = 2
    pred[5, 3:8, 3:9] = 2
    result = surface_distances(pred, gt, spacing=(7.5, 1.2, 0.9))[2]
    assert result.hd95 == pytest.approx(22.5) and result.assd == pytest.approx(22.5) and not result.missing


def test_surface_golden_blocks_anisotropic():
    # 2x2x2 blocks (all voxels are surface), offset by 1 slice and 2 columns; dz = 10, dx = 1.5 mm.
    gt = np.zeros((6, 8, 10), dtype=np.int64)
    pred = np.zeros_like(gt)
    gt[2:4, 4:6, 5:7] = 1
    pred[3:5, 4:6, 7:9] = 1
    # Each surface voxel's nearest neighbour is 0 or 1 slices and 1 or 2 columns away, twice each (both rows).
    distances = [1.5, 3.0, math.hypot(10, 1.5), math.hypot(10, 3.0)]
    result = surface_distances(pred, gt, spacing=(10.0, 0.8, 1.5))[1]
    assert result.assd == pytest.approx(np.mean(distances))
    assert result.hd95 == pytest.approx(math.hypot(10, 3.0))  # P95 of [a, a, b, b, c, c, d, d] is d
    swapped = surface_distances(pred, gt, spacing=(1.5, 0.8, 10.0))[1]
    assert swapped.hd95 != pytest.approx(result.hd95)  # the spacing is applied per axis


def test_surface_identical_masks_are_zero():
    labels = random_labels((5, 16, 16), 2)
    for result in surface_distances(labels, labels, (8.0, 1.0, 1.0)).values():
        assert (result.hd95, result.assd, result.missing) == (0.0, 0.0, False)


def test_surface_empty_rules_and_monai_difference():
    empty = np.zeros((3, 8, 8), dtype=np.int64)
    blob = empty.copy()
    blob[1, 2:5, 2:5] = 1
    both = surface_distances(empty, empty, (5.0, 1.0, 1.0))[1]
    assert (both.hd95, both.assd, both.missing) == (0.0, 0.0, False)
    for pred, gt in ((empty, blob), (blob, empty)):
        one = surface_distances(pred, gt, (5.0, 1.0, 1.0))[1]
        assert math.isnan(one.hd95) and math.isnan(one.assd) and one.missing
        monai = compute_hausdorff_distance(one_hot(pred), one_hot(gt), percentile=95, spacing=[5.0, 1.0, 1.0])
        assert not math.isfinite(monai[0, 0].item())  # MONAI: inf; ours: NaN, counted as missing
    monai = compute_hausdorff_distance(one_hot(empty), one_hot(empty), percentile=95)
    assert math.isnan(monai[0, 0].item())  # MONAI: NaN for both empty; ours: 0


@pytest.mark.parametrize(("seed", "spacing"), [(0, (8.0, 1.3, 1.1)), (1, (10.0, 1.25, 1.25)), (2, (5.0, 0.7, 1.9))])
def test_surface_equals_monai_on_random_blobs(seed: int, spacing: tuple[float, float, float]):
    pred, gt = random_labels((6, 24, 20), seed), random_labels((6, 24, 20), seed + 50)
    ours = surface_distances(pred, gt, spacing)
    hd = compute_hausdorff_distance(one_hot(pred), one_hot(gt), percentile=95, spacing=list(spacing))[0]
    asd = compute_average_surface_distance(one_hot(pred), one_hot(gt), symmetric=True, spacing=list(spacing))[0]
    assert [ours[c].hd95 for c in (1, 2, 3)] == pytest.approx(hd.tolist(), rel=1e-5)
    assert [ours[c].assd for c in (1, 2, 3)] == pytest.approx(asd.tolist(), rel=1e-5)


def test_surface_percentile_100_is_hausdorff():
    pred, gt = random_labels((5, 16, 16), 11), random_labels((5, 16, 16), 12)
    ours = surface_distances(pred, gt, (6.0, 1.0, 1.2), percentile=100)
    hd = compute_hausdorff_distance(one_hot(pred), one_hot(gt), spacing=[6.0, 1.0, 1.2])[0]
    assert [ours[c].hd95 for c in (1, 2, 3)] == pytest.approx(hd.tolist(), rel=1e-5)


def test_slice_first_layout_gives_the_same_metrics():
    pred, gt = random_labels((5, 14, 12), 21), random_labels((5, 14, 12), 22)
    spacing = (9.0, 1.1, 1.4)
    stored_pred, stored_gt = np.moveaxis(pred, 0, -1), np.moveaxis(gt, 0, -1)  # NIfTI-like (X, Y, Z)
    stored_spacing = (1.1, 1.4, 9.0)
    converted_pred, converted_spacing = slice_first(stored_pred, stored_spacing)
    converted_gt, _ = slice_first(stored_gt, stored_spacing)
    assert converted_spacing == spacing
    assert surface_distances(converted_pred, converted_gt, converted_spacing) == surface_distances(pred, gt, spacing)


# ---------------------------------------------------------------- volume record, validation


def test_evaluate_volume_row():
    pred, gt = random_labels((4, 10, 12), 31), random_labels((4, 10, 12), 32)
    metrics = evaluate_volume(pred, gt, (10.0, 1.5, 1.25), dataset="mm1", subject="A0S9V9", phase="ED",
                              vendor="A", pathology="HCM")
    row = metrics.to_row()
    dice = dice_per_class(pred, gt)
    assert row["dice_LV"] == dice[1] and row["dice_MYO"] == dice[2] and row["dice_RV"] == dice[3]
    assert row["dice_mean"] == pytest.approx(np.mean(list(dice.values())))
    assert row["hd95_RV"] == surface_distances(pred, gt, (10.0, 1.5, 1.25))[3].hd95
    assert row["diagonal_mm"] == pytest.approx(math.sqrt(40.0**2 + 15.0**2 + 15.0**2))
    assert list(row)[:5] == ["dataset", "subject", "vendor", "pathology", "phase"]
    assert volume_diagonal_mm((4, 10, 12), (10.0, 1.5, 1.25)) == row["diagonal_mm"]


@pytest.mark.parametrize(
    ("pred", "gt", "spacing", "match"),
    [
        (np.zeros((4, 4), dtype=int), np.zeros((4, 4), dtype=int), (1, 1, 1), "3D"),
        (np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), (1, 1, 1), "integer"),
        (np.zeros((2, 4, 4), dtype=int), np.zeros((2, 4, 5), dtype=int), (1, 1, 1), "same shape"),
        (np.zeros((2, 4, 4), dtype=int), np.zeros((2, 4, 4), dtype=int), (1, 0, 1), "spacing"),
        (np.zeros((2, 4, 4), dtype=int), np.zeros((2, 4, 4), dtype=int), (1, 1), "spacing"),
    ],
)
def test_invalid_inputs_raise(pred: np.ndarray, gt: np.ndarray, spacing: tuple, match: str):
    with pytest.raises(ValueError, match=match):
        surface_distances(pred, gt, spacing)


def test_invalid_percentile_raises():
    labels = np.zeros((2, 4, 4), dtype=int)
    with pytest.raises(ValueError, match="percentile"):
        surface_distances(labels, labels, (1, 1, 1), percentile=120)


# ---------------------------------------------------------------- slice-level Dice


def test_slice_dice_rows_positions_and_values():
    gt = np.zeros((8, 6, 6), dtype=np.int64)
    gt[2:7, 1:4, 1:4] = 1
    pred = gt.copy()
    pred[4] = 0  # LV missed on slice 4
    pred[0, 0, 0] = 3  # RV predicted outside the heart
    rows = slice_dice_rows(pred, gt, dataset="mm2", subject="001", phase="ES")
    assert [r["position"] for r in rows] == pytest.approx([-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25])
    assert [r["gt_present"] for r in rows] == [False, False, True, True, True, True, True, False]
    assert rows[4]["dice_LV"] == 0.0 and rows[3]["dice_LV"] == 1.0
    assert rows[0]["dice_RV"] == 0.0 and rows[1]["dice_RV"] == 1.0 and rows[1]["dice_LV"] == 1.0
    assert rows[0]["subject"] == "001" and rows[7]["slice"] == 7


def test_slice_dice_rows_single_labelled_slice_and_no_labels():
    gt = np.zeros((4, 5, 5), dtype=np.int64)
    gt[1, 2, 2] = 2
    positions = [r["position"] for r in slice_dice_rows(gt, gt)]
    assert positions == [-0.5, 0.5, 1.5, 2.5]
    empty = np.zeros_like(gt)
    assert all(math.isnan(r["position"]) for r in slice_dice_rows(empty, empty))
