"""``CineModule``: a method augments the native slices itself (its own recipe, its own seeded streams), the
validation views restart at every validation run, the training stream survives a checkpoint, and whole
volumes get the evaluation resampling."""

from __future__ import annotations

import pytest
import torch

from sspcmr.data import keys as K
from sspcmr.data.datamodule import CineDataModule
from sspcmr.methods import DINO, MIM, Segmentation, SimCLR
from sspcmr.methods.base import RANK_STRIDE
from sspcmr.transforms import presets

TINY = [8, 16, 32, 64]
GRID = {"output_size": 64, "output_spacing": 2.5}


@pytest.fixture(scope="module")
def loaders(prepared_tiny):
    root, split = prepared_tiny
    out = {}
    for mode in ("segment", "pretrain", "volumes"):
        module = CineDataModule(str(root), str(split), mode=mode, batch_size=4, val_batch_size=8, num_workers=0,
                                **GRID)
        module.setup("fit")
        out[mode] = module
    return out


def first(loader) -> dict:
    return next(iter(loader))


def test_each_recipe_gives_its_documented_views(loaders):
    native = first(loaders["segment"].train_dataloader())
    batch = Segmentation(channels=TINY, **GRID).augment(native, training=True)
    assert batch[K.IMAGE].shape == (4, 1, 64, 64) and batch[K.LABEL].shape == (4, 4, 64, 64)
    assert torch.allclose(batch[K.LABEL].sum(1), torch.ones(4, 64, 64))
    native = first(loaders["pretrain"].train_dataloader())
    batch = SimCLR(channels=TINY, **GRID).augment(native, training=True)
    assert len(batch[K.VIEWS]) == 2 and all(v.shape == (4, 1, 64, 64) for v in batch[K.VIEWS])
    assert batch[K.POSITION].shape == (4,) and len(batch[K.SUBJECT]) == 4
    batch = DINO(channels=TINY, hidden_dim=8, bottleneck_dim=8, output_dim=8, **GRID).augment(native, training=True)
    assert [tuple(v.shape) for v in batch[K.VIEWS]] == [(4, 1, 64, 64)] * 2 + [(4, 1, 32, 32)] * 6


def test_the_stream_is_the_seed_and_the_rank(loaders):
    native = first(loaders["segment"].train_dataloader())

    def views(seed: int) -> torch.Tensor:
        return Segmentation(channels=TINY, **GRID, augmentation_seed=seed).augment(native, training=True)[K.IMAGE]

    assert torch.equal(views(3), views(3))
    assert not torch.equal(views(3), views(4))
    # The first rank's stream is the seed's: the recipe applied with a generator seeded so gives the same views.
    expected = presets.segmentation_train(**GRID)(native, torch.Generator().manual_seed(3))[K.IMAGE]
    assert torch.equal(views(3), expected) and RANK_STRIDE == 100_003


def test_segmentation_validates_and_trains_without_augmentation_on_the_resampling(loaders):
    data = loaders["segment"]
    native = first(data.val_dataloader())
    expected = data.resample(native)[K.IMAGE]
    model = Segmentation(channels=TINY, **GRID)
    assert torch.equal(model.augment(native, training=False)[K.IMAGE], expected)
    plain = Segmentation(channels=TINY, **GRID, augmentation=False)
    assert torch.equal(plain.augment(native, training=True)[K.IMAGE], expected)
    assert not torch.equal(model.augment(native, training=True)[K.IMAGE], expected)


def test_pretraining_validation_views_restart_at_every_validation_run(loaders):
    batch = first(loaders["pretrain"].val_dataloader())
    model = SimCLR(channels=TINY, **GRID)
    views = [model.augment(batch, training=False)[K.VIEWS][0] for _ in range(2)]
    assert not torch.equal(views[0], views[1])  # within a run the draws go on
    model.on_validation_epoch_start()
    assert torch.equal(model.augment(batch, training=False)[K.VIEWS][0], views[0])  # a new run restarts them
    training = model.augment(batch, training=True)[K.VIEWS][0]
    assert not torch.equal(training, views[0])  # training has its own stream


def test_the_training_stream_is_saved_and_restored(loaders):
    native = first(loaders["pretrain"].train_dataloader())
    model = MIM(channels=TINY, patch_size=16, **GRID)
    model.augment(native, training=True)
    checkpoint: dict = {}
    model.on_save_checkpoint(checkpoint)
    continued = model.augment(native, training=True)[K.IMAGE]
    resumed = MIM(channels=TINY, patch_size=16, **GRID)
    resumed.on_load_checkpoint(checkpoint)
    assert torch.equal(resumed.augment(native, training=True)[K.IMAGE], continued)


def test_a_volume_gets_the_evaluation_resampling_with_its_native_labels(loaders):
    data = loaders["volumes"]
    item = data.datasets["test"][0]
    out = Segmentation(channels=TINY, **GRID).augment(item, training=False)
    expected = data.resample(item)
    assert torch.equal(out[K.IMAGE], expected[K.IMAGE]) and torch.equal(out[K.NATIVE_LABEL], item[K.LABEL])
