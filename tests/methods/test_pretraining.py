"""The four pretraining methods: a few real training steps each on the tiny phantom, their checkpoint
manifests, the transfer round trip into ``Segmentation``, and the refusals of incompatible transfers."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch

from sspcmr.data import keys as K
from sspcmr.data.datamodule import CineDataModule
from sspcmr.methods import DINO, MIM, PCL, Segmentation, SimCLR
from sspcmr.methods.transfer import MANIFEST_KEY

TINY = [8, 16, 32, 64]
SIZE = 64
METHODS = {"simclr": (SimCLR, {}), "pcl": (PCL, {}), "mim": (MIM, {"patch_size": 16}),
           "dino": (DINO, {"hidden_dim": 32, "bottleneck_dim": 16, "output_dim": 64})}


GRID = {"output_size": SIZE, "output_spacing": 2.5}  # the model's and the data module's


def data(prepared_tiny, mode: str = "pretrain", **overrides) -> CineDataModule:
    root, split = prepared_tiny
    options = {"batch_size": 4, "val_batch_size": 8, "num_workers": 0, **GRID, **overrides}
    return CineDataModule(str(root), str(split), mode=mode, **options)


def trainer(tmp_path: Path, **overrides) -> L.Trainer:
    options = {"accelerator": "cpu", "devices": 1, "max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 2,
               "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
               "num_sanity_val_steps": 0, "default_root_dir": str(tmp_path), "log_every_n_steps": 1,
               "enable_checkpointing": False, **overrides}
    return L.Trainer(**options)


def pretrain(name: str, prepared_tiny, tmp_path: Path, **model_options):
    """Train a tiny model of method ``name`` for 2 steps; returns (model, checkpoint path)."""
    cls, defaults = METHODS[name]
    torch.manual_seed(0)
    model = cls(channels=TINY, **GRID, **{**defaults, **model_options})
    fit = trainer(tmp_path)
    fit.fit(model, datamodule=data(prepared_tiny))
    path = tmp_path / f"{name}.ckpt"
    fit.save_checkpoint(path)
    return model, path


@pytest.fixture(scope="module")
def pretrained(prepared_tiny, tmp_path_factory):
    """Each method pretrained once for the module: {name: (model, checkpoint)}."""
    out = {}
    for name in METHODS:
        out[name] = pretrain(name, prepared_tiny, tmp_path_factory.mktemp(name))
    return out


@pytest.mark.parametrize("name", list(METHODS))
def test_pretraining_steps_change_the_encoder_and_write_a_manifest(pretrained, name):
    model, path = pretrained[name]
    torch.manual_seed(0)
    fresh = METHODS[name][0](channels=TINY, **METHODS[name][1])
    trained = model.backbone.encoder.state_dict()
    assert any(not torch.equal(v, fresh.backbone.encoder.state_dict()[k]) for k, v in trained.items())
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
    manifest = torch.load(path, map_location="cpu", weights_only=False)[MANIFEST_KEY]
    assert manifest["method"] == name
    assert manifest["prefix"] == "backbone."
    assert manifest["transferable"] == (["encoder", "decoder"] if name == "mim" else ["encoder"])
    assert manifest["unet"]["channels"] == TINY
    assert manifest["preprocessing"]["output_size"] == SIZE
    assert manifest["preprocessing"]["output_spacing"] == 2.5


@pytest.mark.parametrize("name", list(METHODS))
def test_transfer_round_trip_loads_the_pretrained_tensors_and_no_head(pretrained, name):
    model, path = pretrained[name]
    mode = "encoder+decoder" if name == "mim" else "encoder"
    torch.manual_seed(1)
    scratch = Segmentation(channels=TINY, **GRID, log_images=False)
    torch.manual_seed(1)
    tuned = Segmentation(channels=TINY, **GRID, log_images=False, init_from=str(path), transfer=mode)
    tuned.apply_init_from()
    source = model.backbone.state_dict()
    target = tuned.net.state_dict()
    parts = ("encoder.", "decoder.") if name == "mim" else ("encoder.",)
    for key, value in target.items():
        if key.startswith(parts):
            assert torch.equal(value, source[key]), key
        else:  # decoder (encoder-only methods) and heads stay at the scratch initialisation
            assert torch.equal(value, scratch.net.state_dict()[key]), key
    assert all(key.startswith(parts) for key in tuned.transfer_report.loaded)
    assert any(key.startswith("heads.") for key in tuned.transfer_report.kept_initial)
    assert tuned.transfer_report.manifest["method"] == name


@pytest.mark.parametrize("name", ["simclr", "dino"])
def test_encoder_only_methods_refuse_decoder_transfer(pretrained, name):
    _, path = pretrained[name]
    with pytest.raises(ValueError, match="provides only encoder; use --model.transfer encoder"):
        Segmentation(channels=TINY, **GRID, init_from=str(path), transfer="encoder+decoder").apply_init_from()


def test_other_architecture_is_refused_with_the_fix(pretrained):
    _, path = pretrained["mim"]
    with pytest.raises(ValueError, match=r"channels: pretrained \[8, 16, 32, 64\].*--model.channels \[8,16,32,64\]"):
        Segmentation(channels=[8, 16, 32, 128], init_from=str(path), transfer="encoder").apply_init_from()
    with pytest.raises(ValueError, match="norm"):
        Segmentation(channels=TINY, **GRID, norm="instance", init_from=str(path)).apply_init_from()


def test_other_preprocessing_is_refused_at_setup(pretrained, prepared_tiny, tmp_path):
    _, path = pretrained["mim"]
    other = {**GRID, "output_spacing": 1.25}
    model = Segmentation(channels=TINY, **other, log_images=False, init_from=str(path), transfer="encoder+decoder")
    fit = trainer(tmp_path, max_steps=1)
    with pytest.raises(ValueError, match="output_spacing: pretrained 2.5, here 1.25.*--data.output_spacing 2.5"):
        fit.fit(model, datamodule=data(prepared_tiny, mode="segment", output_spacing=1.25))
    unchecked = Segmentation(channels=TINY, **other, log_images=False, init_from=str(path), check_preprocessing=False)
    trainer(tmp_path, max_steps=1).fit(unchecked, datamodule=data(prepared_tiny, mode="segment",
                                                                   output_spacing=1.25))


def test_fine_tuning_starts_from_the_checkpoint_and_records_the_report(pretrained, prepared_tiny, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    model, path = pretrained["simclr"]
    tuned = Segmentation(channels=TINY, **GRID, log_images=False, init_from=str(path))
    fit = trainer(tmp_path, max_steps=1, logger=CSVLogger(str(tmp_path)))
    fit.fit(tuned, datamodule=data(prepared_tiny, mode="segment"))
    report = (Path(fit.logger.log_dir) / "transfer.json").read_text()
    assert '"method": "simclr"' in report and "encoder.enc_blocks.0.conv1.weight" in report
    saved = tmp_path / "tuned.ckpt"
    fit.save_checkpoint(saved)
    assert torch.load(saved, weights_only=False)[MANIFEST_KEY]["method"] == "segmentation"


def test_a_method_on_another_grid_than_the_data_module_is_refused(prepared_tiny, tmp_path):
    # From Python the grid is given to both; a mismatch would train on one grid and evaluate on another.
    with pytest.raises(ValueError, match="MIM resamples to 64 px at 2.0 mm but the data module to 64 px at 2.5 mm"):
        trainer(tmp_path).fit(MIM(channels=TINY, **{**GRID, "output_spacing": 2.0}, patch_size=16),
                              datamodule=data(prepared_tiny))


def test_each_method_draws_its_own_views(prepared_tiny):
    # The data module serves native slices; each method's recipe makes its views (the recipes it owns).
    loader = data(prepared_tiny)
    loader.setup("fit")
    batch = next(iter(loader.train_dataloader()))
    assert batch[K.IMAGE].shape[-1] != SIZE or K.VIEWS not in batch  # native, not yet augmented
    for cls, defaults, views in [(SimCLR, {}, [SIZE] * 2), (PCL, {"num_views": 3}, [SIZE] * 3),
                                 (MIM, {"patch_size": 16}, None),
                                 (DINO, {"hidden_dim": 32, "bottleneck_dim": 16, "output_dim": 64},
                                  [SIZE] * 2 + [SIZE // 2] * 6)]:
        out = cls(channels=TINY, **GRID, **defaults).augment(dict(batch), training=True)
        if views is None:
            assert out[K.IMAGE].shape == (4, 1, SIZE, SIZE) and K.VIEWS not in out
        else:
            assert [v.shape[-1] for v in out[K.VIEWS]] == views and K.IMAGE not in out


def test_simclr_head_is_the_reference_mlp():
    model = SimCLR()
    layers = [m for m in model.head.modules() if isinstance(m, (torch.nn.Linear, torch.nn.ReLU,
                                                                 torch.nn.BatchNorm1d))]
    kinds = [type(m).__name__ for m in layers]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert all(m.in_features == 512 and m.out_features == 512 and m.bias is not None
               for m in layers if isinstance(m, torch.nn.Linear))
    encoder = sum(p.numel() for p in model.backbone.parameters())
    head = sum(p.numel() for p in model.head.parameters())
    assert encoder + head == 14_946_912  # the reference EncoderMLP2d (docs/reference.md#encoder-mlp)
    assert model(torch.randn(2, 1, 256, 256)).shape == (2, 512)


def test_pcl_keeps_its_own_hyperparameters():
    model = PCL(channels=TINY, **GRID, threshold=0.2, cyclic=True)
    assert model.hparams.threshold == 0.2 and model.hparams.cyclic and model.hparams.weight_decay == 1e-5
    assert model.criterion.threshold == 0.2 and model.criterion.cyclic


def test_mim_outputs_one_channel_at_full_resolution():
    model = MIM().eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 256, 256)).shape == (2, 1, 256, 256)
    assert model.backbone.num_outputs == 1


def test_mim_validation_masks_repeat_every_epoch():
    model = MIM(channels=TINY, **GRID, patch_size=16)
    masks = []
    for _ in range(2):  # two validation epochs see the same masks, so their losses are comparable
        model.on_validation_epoch_start()
        masks.append(model.masker(torch.zeros(4, 1, SIZE, SIZE), model._val_generator)[1])
    assert torch.equal(masks[0], masks[1])
    training = model.masker(torch.zeros(4, 1, SIZE, SIZE), model._train_generator())[1]
    assert not torch.equal(training, masks[0])  # training draws its own stream


def test_mim_mask_stream_resumes_from_the_checkpoint(pretrained):
    _, path = pretrained["mim"]
    checkpoint = torch.load(path, weights_only=False)
    model = MIM(channels=TINY, **GRID, patch_size=16)
    model.on_load_checkpoint(checkpoint)
    resumed = model.masker(torch.zeros(1, 1, SIZE, SIZE), model.mask_generator)[1]
    fresh = model.masker(torch.zeros(1, 1, SIZE, SIZE), torch.Generator().manual_seed(0))[1]
    # Two training steps consumed the stream, so the next mask is not the first of a fresh stream.
    assert not torch.equal(resumed, fresh)


# -- monitors during training ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_valid_subjects(prepared_tiny, tmp_path_factory) -> tuple[str, str]:
    """The tiny split with one more training subject moved to validation (the probe cross-fits by subject)."""
    from dataclasses import replace

    from sspcmr.data.splits import read_split, write_split

    root, split_path = prepared_tiny
    split = read_split(split_path)
    dataset, ids = next((d, i) for d, i in split.train.items() if len(i) > 1)
    train = {**split.train, dataset: ids[1:]}
    valid = {**split.valid, dataset: [*split.valid.get(dataset, []), ids[0]]}
    out = write_split(replace(split, train=train, valid=valid), tmp_path_factory.mktemp("split") / "split.yaml")
    return str(root), str(out)


@pytest.mark.parametrize("name", list(METHODS))
def test_monitors_are_logged(name, two_valid_subjects, tmp_path):
    cls, defaults = METHODS[name]
    root, split = two_valid_subjects
    module = CineDataModule(root, split, mode="pretrain", batch_size=4, val_batch_size=16, num_workers=0, **GRID)
    model = cls(channels=TINY, **GRID, **defaults)
    fit = trainer(tmp_path, limit_val_batches=1.0)
    fit.fit(model, datamodule=module)
    metrics = fit.callback_metrics
    assert {"train/embedding_std", "train/effective_rank", "val/probe_position_r2",
            "val/probe_position_mae"} <= set(metrics), sorted(metrics)
    assert float(metrics["train/effective_rank"]) >= 1.0
    assert 0 <= float(metrics["val/probe_position_mae"]) < 1
    if name == "dino":
        entropy = float(metrics["train/teacher_entropy"])
        assert 0 <= entropy <= math.log(64) + 1e-4


def test_mim_logs_reconstructions_to_tensorboard(prepared_tiny, tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = MIM(channels=TINY, **GRID, patch_size=16)
    fit = trainer(tmp_path, logger=TensorBoardLogger(str(tmp_path), name="tb"))
    fit.fit(model, datamodule=data(prepared_tiny))
    events = EventAccumulator(fit.logger.log_dir)
    events.Reload()
    assert "val/reconstructions" in events.Tags()["images"]
    image = events.Images("val/reconstructions")[0]
    assert image.width == 2 + 5 * (SIZE + 2)  # five panels per row, one row per slice
    assert image.height == 2 + 8 * (SIZE + 2)


# -- export-backbone ------------------------------------------------------------------------------------------


def test_export_mim_backbone_with_reference_names_round_trips(pretrained, tmp_path):
    from sspcmr.commands.main import main

    model, path = pretrained["mim"]
    out = tmp_path / "mim_backbone.pt"
    assert main(["export-backbone", str(path), "-o", str(out)]) == 0
    state = torch.load(out, weights_only=True)
    assert state and all(k.startswith(("encoder.enc_blocks.", "decoder.upconvs.", "decoder.dec_blocks."))
                         for k in state)
    assert (tmp_path / "mim_backbone.pt.json").is_file()
    source = model.backbone.state_dict()
    assert all(torch.equal(v, source[k]) for k, v in state.items())
    assert len(state) == sum(1 for k in source if k.startswith(("encoder.", "decoder.")))
    tuned = Segmentation(channels=TINY, **GRID, init_from=str(out), transfer="encoder+decoder", log_images=False)
    tuned.apply_init_from()
    assert all(torch.equal(tuned.net.state_dict()[k], v) for k, v in state.items())


def test_export_all_parts_uses_the_reference_head_names(pretrained, tmp_path):
    from sspcmr.methods.export import export_backbone
    from sspcmr.models import UNet, UNetConfig, from_reference_state_dict

    model, path = pretrained["mim"]
    out = export_backbone(path, tmp_path / "all.pt", parts="all")
    state = torch.load(out, weights_only=True)
    assert "decoder.output_convs.0.weight" in state and not any(k.startswith("heads.") for k in state)
    net = UNet(UNetConfig(channels=tuple(TINY), out_channels=1, num_heads=1))
    net.load_state_dict(from_reference_state_dict(state), strict=True)
    assert torch.equal(net.heads[0].weight, model.backbone.heads[0].weight)


def test_export_refuses_parts_an_encoder_method_lacks(pretrained, tmp_path, capsys):
    from sspcmr.commands.main import main
    from sspcmr.methods.export import backbone_state_dict

    _, path = pretrained["simclr"]
    state, manifest = backbone_state_dict(path)
    assert state and all(k.startswith("encoder.enc_blocks.") for k in state) and manifest["method"] == "simclr"
    for parts in ("encoder+decoder", "all"):
        with pytest.raises(ValueError, match="encoder"):
            backbone_state_dict(path, parts=parts)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    assert main(["export-backbone", str(foreign), "-o", str(tmp_path / "x.pt")]) == 2
    assert "not an sspcmr checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
