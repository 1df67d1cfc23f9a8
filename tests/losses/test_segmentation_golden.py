"""Golden values of the Dice + CE loss, pinned so that no change of its implementation goes unnoticed.

The expected numbers were computed with sspcmr's ``DiceCELoss`` (per-slice soft Dice over the foreground
classes, smooth 1e-5, probability-target CE; equal to ``monai.losses.DiceCELoss`` to 1e-12 in float64, see
test_segmentation.py). A MONAI-backed version was tried: it agrees to ~1e-7 in float32 but sums in another
order, and 600 epochs of the demo's scratch run then ended up to 0.05 Dice apart on a test volume, so the
loss stays hand-written. The test fails on a drift of more than ~1e-6. The
inputs are seeded and cover float32 and float64, an absent class on one slice and on the whole batch,
batch Dice, the background class, non-default component weights, a 3-D input, integer targets, the
gradients, and the deep-supervision sum over heads.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sspcmr.losses import DeepSupervisionLoss, DiceCELoss

# name: (shape (B, C, *spatial), dtype, seed, absent classes as (sample or None for all, class), loss options)
CASES: dict[str, tuple[tuple[int, ...], torch.dtype, int, list[tuple[int | None, int]], dict]] = {
    "per_slice_f64": ((3, 4, 6, 5), torch.float64, 0, [(0, 2)], {}),
    "empty_class_f32": ((2, 4, 16, 16), torch.float32, 1, [(None, 3), (1, 1)], {}),
    "batch_dice_f32": ((2, 4, 16, 16), torch.float32, 1, [(None, 3), (1, 1)], {"batch_dice": True}),
    "background_f32": ((2, 4, 16, 16), torch.float32, 2, [(0, 2)], {"include_background": True}),
    "weights_f32": ((4, 3, 8, 8), torch.float32, 3, [], {"ce_weight": 0.3, "dice_weight": 0.7}),
    "volume_f32": ((2, 3, 4, 6, 6), torch.float32, 4, [(1, 2)], {}),
}

# name: (total, ce, dice, Σ|∂total/∂logits|, Σ ∂total/∂logits · probe)
GOLDEN: dict[str, tuple[float, float, float, float, float]] = {
    "per_slice_f64": (1.7402272965157792, 2.682915134163606, 0.7975394588679526, 0.863265056744994,
                      -0.006724730977073292),
    "empty_class_f32": (1.5726803541183472, 2.2926125526428223, 0.8527482151985168, 0.7747825384140015,
                        -0.020176835358142853),
    "batch_dice_f32": (1.5631661415100098, 2.2926125526428223, 0.8337196111679077, 0.7858746647834778,
                       -0.020034708082675934),
    "background_f32": (1.6270310878753662, 2.4807965755462646, 0.7732654809951782, 0.8549701571464539,
                       0.012533623725175858),
    "weights_f32": (1.0352041721343994, 1.895472526550293, 0.6665177345275879, 0.5609044432640076,
                    -0.008469640277326107),
    "volume_f32": (1.432106614112854, 2.111138343811035, 0.7530748844146729, 0.748813807964325, -0.000142029020935297),
}
# Deep supervision, 4 heads from 32 x 32, per weighting; same five numbers (the gradients over all heads).
GOLDEN_DEEP = {
    "reference": (1.7020275592803955, 2.5163259506225586, 0.8877290487289429, 0.8135868236422539,
                  -0.0014524799771606922),
    "nnunet": (1.704614520072937, 2.52559494972229, 0.8836343288421631, 0.8145532384514809, 0.001349559985101223),
}


def make_case(shape: tuple[int, ...], dtype: torch.dtype, seed: int,
              absent: list[tuple[int | None, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded (logits, one-hot target, gradient probe); each ``absent`` class is relabelled 0 on its slices."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    probe = torch.randn(shape, generator=g, dtype=torch.float64)
    for sample, cls in absent:
        chosen = labels if sample is None else labels[sample]
        chosen[chosen == cls] = 0
    target = F.one_hot(labels, shape[1]).movedim(-1, 1)
    return logits.to(dtype), target.to(dtype), probe.to(dtype)


def evaluate(loss: torch.nn.Module, logits: torch.Tensor | list[torch.Tensor], target: torch.Tensor,
             probe: torch.Tensor | list[torch.Tensor]) -> tuple[float, ...]:
    """(total, ce, dice, Σ|grad|, Σ grad · probe) of ``loss(logits, target)``; lists are deep-supervision heads."""
    heads = [h.detach().clone().requires_grad_() for h in (logits if isinstance(logits, list) else [logits])]
    out = loss(heads if isinstance(logits, list) else heads[0], target)
    out.total.backward()
    probes = probe if isinstance(probe, list) else [probe]
    grad_abs = sum(float(h.grad.abs().sum()) for h in heads)
    grad_probe = sum(float((h.grad * p).sum()) for h, p in zip(heads, probes, strict=True))
    return float(out.total.detach()), float(out.ce.detach()), float(out.dice.detach()), grad_abs, grad_probe


def assert_golden(values: tuple[float, ...], expected: tuple[float, ...]) -> None:
    # rel 1e-6 is float32 rounding of a reordered sum; abs 1e-8 covers the gradient probes near 0.
    assert values == pytest.approx(expected, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("name", list(CASES))
def test_dice_ce_golden(name: str) -> None:
    shape, dtype, seed, absent, options = CASES[name]
    logits, target, probe = make_case(shape, dtype, seed, absent)
    assert_golden(evaluate(DiceCELoss(**options), logits, target, probe), GOLDEN[name])


def test_integer_one_hot_target_golden() -> None:
    shape, dtype, seed, absent, options = CASES["empty_class_f32"]
    logits, target, probe = make_case(shape, dtype, seed, absent)
    assert_golden(evaluate(DiceCELoss(**options), logits, target.long(), probe), GOLDEN["empty_class_f32"])


@pytest.mark.parametrize("weighting", ["reference", "nnunet"])
def test_deep_supervision_golden(weighting: str) -> None:
    _, target, _ = make_case((2, 4, 32, 32), torch.float32, 5, [(None, 2), (0, 1)])
    g = torch.Generator().manual_seed(6)
    heads = [torch.randn(2, 4, 32 >> i, 32 >> i, generator=g) * 2 for i in range(4)]
    probes = [torch.randn(2, 4, 32 >> i, 32 >> i, generator=g) for i in range(4)]
    loss = DeepSupervisionLoss(DiceCELoss(), num_scales=4, weighting=weighting)  # type: ignore[arg-type]
    assert_golden(evaluate(loss, heads, target, probes), GOLDEN_DEEP[weighting])
