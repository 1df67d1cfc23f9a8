"""CineDataModule under a real 2-process CPU DDP (gloo): every training and validation item is served
exactly once per epoch across ranks, and each rank reads through memory maps."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from sspcmr.data import keys as K
from sspcmr.data.datamodule import CineDataModule

pytestmark = pytest.mark.slow  # multi-process runs: `pytest -m "not slow"` skips them


class Recorder(L.LightningModule):
    """Records which (subject, slice, frame) each rank is served and writes it per rank."""

    def __init__(self, out: str) -> None:
        super().__init__()
        self.out = out
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen = {"train": [], "val": []}

    def _record(self, part: str, batch: dict) -> None:
        keys = torch.stack([batch[K.SUBJECT_INDEX], batch[K.SLICE], batch[K.FRAME]], 1).tolist()
        self.seen[part] += [tuple(k) for k in keys]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        assert K.VIEWS not in batch and batch[K.IMAGE].ndim == 4  # native slices: a method augments them itself
        self._record("train", batch)
        return (self.weight * batch[K.IMAGE].float().mean()).sum()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._record("val", batch)

    def on_train_epoch_end(self) -> None:
        dataset = self.trainer.datamodule.datasets["train"]
        mapped = all(isinstance(a, np.memmap) for a in dataset.prepared._arrays.values())
        report = {"seen": self.seen, "world": self.trainer.world_size, "memmap": mapped,
                  "arrays": len(dataset.prepared._arrays), "subjects": len(dataset.prepared.subjects)}
        Path(self.out, f"rank{self.global_rank}.json").write_text(json.dumps(report))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_two_process_ddp_serves_each_item_once(prepared_tiny, tmp_path):
    root, split = prepared_tiny
    module = CineDataModule(str(root), str(split), mode="pretrain", batch_size=4, num_workers=0, output_size=32)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0)
    trainer.fit(Recorder(str(tmp_path)), datamodule=module)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 and r["memmap"] for r in reports)

    module.setup("fit")
    n_train, n_val = len(module.datasets["train"]), len(module.datasets["val"])
    train = [tuple(k) for r in reports for k in r["seen"]["train"]]
    val = [tuple(k) for r in reports for k in r["seen"]["val"]]
    assert len(set(train)) == len(train), "a training item was served twice in one epoch"
    assert n_train - 2 * 4 < len(train) <= n_train  # only the incomplete last batch per rank is dropped
    assert sorted(val) == sorted(set(val)) and len(val) == n_val  # validation: complete, no repeats
    shares = [set(map(tuple, r["seen"]["train"])) for r in reports]
    assert not shares[0] & shares[1]
    # Neither rank opened every subject's arrays up front: memory maps are opened on demand, per rank.
    assert all(r["arrays"] <= r["subjects"] for r in reports)
