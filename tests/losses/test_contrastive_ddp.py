"""Contrastive and DINO losses under a real 2-process CPU DDP (gloo) equal their single-process counterparts.

NT-Xent is checked both as lightly's and as sspcmr's (which must agree rank by rank); PCL also with
``equal_rows=True``, the training path that skips the exchange of row counts.

One spawn runs every case (start-up dominates the cost): each rank feeds its half of a 2B batch through a
DDP-wrapped ``nn.Linear``, back-propagates its local loss and saves the loss and the (DDP-averaged) gradients.
The parent compares them with the same loss on the whole batch in one process.
"""

from __future__ import annotations

import datetime
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightly.loss import DINOLoss, NTXentLoss
from torch import nn

from sspcmr.losses import NTXentLoss as SspcmrNTXentLoss
from sspcmr.losses.contrastive import PositionalContrastiveLoss

pytestmark = pytest.mark.slow  # multi-process runs: `pytest -m "not slow"` skips them

WORLD_SIZE = 2
BATCH = 4  # samples per rank
SEED = 1234
# Per-sample positions: rank 0 takes the first 4, rank 1 the last 4. Close pairs across ranks (0.0/0.02,
# 0.05/0.02, 0.3/0.33), anchors without positives (0.6, 0.8, and 0.97 unless cyclic), and cyclic pairs
# (0.97/0.0, 0.97/0.02).
POSITIONS = [0.0, 0.05, 0.3, 0.6, 0.02, 0.33, 0.97, 0.8]
DINO_DIM = 32


def make_model() -> nn.Linear:
    torch.manual_seed(SEED)
    return nn.Linear(16, 8)


def make_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two views (2B, 16) of 2B samples and their (2B,) positions."""
    generator = torch.Generator().manual_seed(SEED + 1)
    view0 = torch.randn(WORLD_SIZE * BATCH, 16, generator=generator)
    view1 = view0 + 0.5 * torch.randn(WORLD_SIZE * BATCH, 16, generator=generator)
    return view0, view1, torch.tensor(POSITIONS)


def ntxent_loss(gather: bool, ours: bool = False):
    criterion = (SspcmrNTXentLoss if ours else NTXentLoss)(temperature=0.1, gather_distributed=gather)

    def loss(model: nn.Module, view0: torch.Tensor, view1: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        out0, out1 = model(torch.cat([view0, view1])).chunk(2)  # one forward through DDP
        return criterion(out0, out1)

    return loss


def pcl_loss(gather: bool, cyclic: bool = False, two_views: bool = True, equal_rows: bool = False):
    criterion = PositionalContrastiveLoss(temperature=0.1, threshold=0.1, cyclic=cyclic, gather_distributed=gather,
                                          equal_rows=equal_rows)

    def loss(model: nn.Module, view0: torch.Tensor, view1: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        if two_views:  # the PCL method's layout: [view0; view1] with the positions repeated
            return criterion(model(torch.cat([view0, view1])), positions.repeat(2))
        # One view: some anchors lack positives and ranks hold different numbers of anchors with positives.
        return criterion(model(view0), positions)

    return loss


CASES = {
    "ntxent": ntxent_loss(True),
    "ntxent_no_gather": ntxent_loss(False),
    "sspcmr_ntxent": ntxent_loss(True, ours=True),
    "sspcmr_ntxent_no_gather": ntxent_loss(False, ours=True),
    "pcl": pcl_loss(True),
    "pcl_equal_rows": pcl_loss(True, equal_rows=True),
    "pcl_one_view_equal_rows": pcl_loss(True, two_views=False, equal_rows=True),
    "pcl_cyclic": pcl_loss(True, cyclic=True),
    "pcl_one_view": pcl_loss(True, two_views=False),
    "pcl_one_view_cyclic": pcl_loss(True, cyclic=True, two_views=False),
    "pcl_no_gather": pcl_loss(False),
}
GATHERED = [name for name in CASES if not name.endswith("no_gather")]


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE, timeout=datetime.timedelta(seconds=60))
    try:
        results: dict[str, object] = {}
        view0, view1, positions = make_data()
        rows = slice(rank * BATCH, (rank + 1) * BATCH)
        for name, loss_fn in CASES.items():
            model = nn.parallel.DistributedDataParallel(make_model())
            loss = loss_fn(model, view0[rows], view1[rows], positions[rows])
            loss.backward()
            results[name] = {"loss": loss.item(), "weight": model.module.weight.grad.clone(),
                             "bias": model.module.bias.grad.clone()}

        # Unequal rows across ranks: every rank raises rather than hanging in the gather.
        try:
            PositionalContrastiveLoss()(torch.randn(3 + rank, 8), torch.zeros(3 + rank))
            results["unequal"] = "no error"
        except ValueError as error:
            results["unequal"] = str(error)

        # DINO: different teacher outputs per rank; the centre is all-reduced.
        generator = torch.Generator().manual_seed(SEED + 10 + rank)
        teacher = [torch.randn(BATCH, DINO_DIM, generator=generator) + rank for _ in range(2)]
        student = [torch.randn(BATCH, DINO_DIM, generator=generator) for _ in range(4)]
        dino = DINOLoss(output_dim=DINO_DIM, warmup_teacher_temp=0.02, teacher_temp=0.04,
                        warmup_teacher_temp_epochs=30, student_temp=0.1, center_momentum=0.9)
        dino(teacher, student, epoch=0)
        results["dino_center"] = dino.center.clone()
        results["dino_teacher"] = torch.cat(teacher)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def single_process(name: str) -> dict[str, object]:
    """The case's loss on the whole 2B batch in one process (no process group, so no gathering)."""
    model = make_model()
    view0, view1, positions = make_data()
    # Rank-major concatenation of the local batches: NT-Xent pairs rows, PCL is permutation invariant.
    loss = CASES[name](model, view0, view1, positions)
    loss.backward()
    return {"loss": loss.item(), "weight": model.weight.grad, "bias": model.bias.grad}


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out_dir = tmp_path_factory.mktemp("ddp_losses")
    mp.spawn(_worker, args=(_free_port(), str(out_dir)), nprocs=WORLD_SIZE, join=True)
    return [torch.load(out_dir / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


@pytest.mark.parametrize("name", GATHERED)
def test_gathered_loss_and_gradients_equal_single_process(ddp_results: list[dict], name: str) -> None:
    reference = single_process(name)
    losses = [results[name]["loss"] for results in ddp_results]
    assert sum(losses) / WORLD_SIZE == pytest.approx(reference["loss"], rel=1e-5, abs=1e-6)
    for results in ddp_results:
        for key in ("weight", "bias"):
            torch.testing.assert_close(results[name][key], reference[key], rtol=1e-5, atol=1e-6)


def test_one_view_pcl_ranks_hold_unequal_anchor_counts(ddp_results: list[dict]) -> None:
    # Rank 0 has 3 anchors with positives, rank 1 has 2 (0.97 and 0.8 have none): the per-rank losses are
    # scaled by the global count, not their own, so they are not simply local means.
    criterion = PositionalContrastiveLoss()
    positions = torch.tensor(POSITIONS)
    mask = criterion.positive_mask(positions, positions) & ~torch.eye(len(POSITIONS), dtype=torch.bool)
    assert mask.any(dim=1).view(WORLD_SIZE, BATCH).sum(dim=1).tolist() == [3, 2]


def test_sspcmr_ntxent_equals_lightly_on_every_rank(ddp_results: list[dict]) -> None:
    for results in ddp_results:
        for suffix in ("", "_no_gather"):
            ours, lightly = results[f"sspcmr_ntxent{suffix}"], results[f"ntxent{suffix}"]
            assert ours["loss"] == pytest.approx(lightly["loss"], rel=1e-6, abs=1e-6)
            for key in ("weight", "bias"):
                torch.testing.assert_close(ours[key], lightly[key], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["ntxent", "sspcmr_ntxent", "pcl"])
def test_without_gathering_the_gradients_differ(ddp_results: list[dict], name: str) -> None:
    reference = single_process(name)
    for results in ddp_results:
        assert (results[f"{name}_no_gather"]["weight"] - reference["weight"]).abs().max() > 1e-3
    # DDP still averages the gradients, so the ranks agree with each other.
    torch.testing.assert_close(ddp_results[0][f"{name}_no_gather"]["weight"],
                               ddp_results[1][f"{name}_no_gather"]["weight"])


def test_unequal_rows_raise_on_every_rank(ddp_results: list[dict]) -> None:
    for results in ddp_results:
        assert "same number of rows on every rank; got [3, 4]" in results["unequal"]


def test_dino_center_is_all_reduced(ddp_results: list[dict]) -> None:
    teacher_rows = torch.cat([results["dino_teacher"] for results in ddp_results])  # 2 ranks x 2 views x B
    expected = 0.1 * teacher_rows.mean(dim=0)
    centers = [results["dino_center"] for results in ddp_results]
    assert torch.equal(centers[0], centers[1])
    torch.testing.assert_close(centers[0].view(-1), expected, rtol=1e-5, atol=1e-6)
    # The ranks saw different teachers, so a local centre would differ.
    local = 0.1 * ddp_results[0]["dino_teacher"].mean(dim=0)
    assert (local - expected).abs().max() > 0.01
