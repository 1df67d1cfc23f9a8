"""``Segmentation``: the U-Net trained with labels, from scratch (the paper's baseline) or fine-tuned.

Reference recipe (docs/reference.md#segmentation-loss, #optimisation, #transfer): 0.5 CE + 0.5 per-slice soft Dice over
LV, MYO and RV on all six deep-supervision heads weighted by 2^-i; SGD with Nesterov momentum 0.99 and weight decay 3e-5
on all parameters; learning rate 0.01 from scratch and 0.005 for fine-tuning, polynomial decay
(power 0.9) per epoch over the run's epochs; fp32; evaluation of the last epoch on whole volumes in
native space.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_info

from sspcmr.data import keys as K
from sspcmr.data.atomic import atomic_write_bytes
from sspcmr.data.errors import DataError
from sspcmr.evaluation.metrics import slice_dice
from sspcmr.evaluation.volume import VolumeEvaluator
from sspcmr.inference.volume import volume_labels
from sspcmr.losses import DeepSupervisionLoss, DiceCELoss
from sspcmr.methods.base import CineModule
from sspcmr.methods.optimisation import SGDPoly
from sspcmr.methods.transfer import (
    MANIFEST_KEY,
    TransferMode,
    TransferReport,
    build_manifest,
    check_preprocessing,
    load_file,
    load_transfer,
)
from sspcmr.methods.visuals import log_overlays
from sspcmr.models import UNet, UNetConfig
from sspcmr.models.unet import check_input_size
from sspcmr.transforms import presets
from sspcmr.transforms.views import Augmenter

__all__ = ["Segmentation", "slice_dice"]  # slice_dice: re-exported from sspcmr.evaluation.metrics


class Segmentation(CineModule):
    """U-Net segmentation of LV, MYO and RV with deep supervision.

    Args:
        channels: U-Net channels per stage (reference: 32, 64, 128, 256, 512, 512, 512).
        num_heads: deep-supervision heads (reference -1: every decoder stage, 6 for 7 stages).
        norm: normalisation layer: ``batch`` (reference), ``instance`` or ``none``.
        num_classes: output classes including background (4).
        lr: learning rate (reference: 0.01 from scratch, 0.005 for fine-tuning).
        momentum: SGD momentum (reference 0.99, Nesterov).
        nesterov: Nesterov momentum.
        weight_decay: weight decay on all parameters (reference 3e-5, biases and BN included).
        poly_power: polynomial decay power per epoch over ``trainer.max_epochs`` (reference 0.9).
        ce_weight: weight of cross-entropy (reference 0.5).
        dice_weight: weight of the per-slice soft Dice (reference 0.5).
        deep_supervision: head weighting: ``reference`` (2^-i over all heads) or ``nnunet`` (lowest
            head dropped).
        init_from: checkpoint to initialise from (a pretraining run's ``.ckpt`` or an exported backbone
            ``.pt``); None trains from scratch. Applied once, when a fit starts from nothing: the transferred
            weights then belong to this model's own state, and the file is recorded (path and sha256) in its
            checkpoints' manifest but never read again: not when a run resumes, nor by ``load_from_checkpoint``,
            ``test``, ``evaluate`` or ``segment``.
        transfer: what ``init_from`` provides: ``encoder`` or ``encoder+decoder`` (never the heads).
        check_preprocessing: refuse to fine-tune when the data module resamples to another output size or
            spacing than the pretraining run recorded in its manifest.
        freeze_encoder_epochs: keep the encoder frozen for this many first epochs (reference 0; BN
            statistics keep updating; one optimiser and one poly schedule over the whole run).
        two_stage_epochs: Dominic et al.'s two-stage fine-tuning: for this many first epochs the
            transferred weights (the encoder, or encoder and decoder, per ``transfer``) are frozen, their
            BatchNorm statistics included, and only the rest trains, at ``two_stage_lr`` with its own poly
            decay over these epochs; then everything is unfrozen and the poly schedule restarts from
            ``lr`` over the remaining epochs. 0 (default, the reference and the paper's best) fine-tunes
            everything at once. Needs ``init_from``.
        two_stage_lr: learning rate of the frozen stage (None: ``lr``).
        augmentation: train on the reference's augmented views (True) or on the evaluation resampling
            alone (False: the paper's no-augmentation experiment). Validation always sees the resampling alone.
        log_images: log segmentation overlays of a fixed validation batch to TensorBoard each epoch.
        results_dir: where ``test`` writes per-volume results and summaries (default: the logger's
            folder, else ``results/``).
        **kwargs: the output grid, intensity convention, centring and augmentation seed
            (:class:`~sspcmr.methods.base.CineModule`).
    """

    def __init__(
        self,
        channels: list[int] | None = None,
        num_heads: int = -1,
        norm: Literal["batch", "instance", "none"] = "batch",
        num_classes: int = 4,
        lr: float = 0.01,
        momentum: float = 0.99,
        nesterov: bool = True,
        weight_decay: float = 3e-5,
        poly_power: float = 0.9,
        ce_weight: float = 0.5,
        dice_weight: float = 0.5,
        deep_supervision: Literal["reference", "nnunet"] = "reference",
        init_from: str | None = None,
        transfer: TransferMode = "encoder",
        check_preprocessing: bool = True,
        freeze_encoder_epochs: int = 0,
        two_stage_epochs: int = 0,
        two_stage_lr: float | None = None,
        augmentation: bool = True,
        log_images: bool = True,
        results_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0 or freeze_encoder_epochs < 0:
            raise ValueError("lr must be > 0, momentum in [0, 1), weight_decay and freeze_encoder_epochs >= 0")
        if two_stage_epochs < 0 or (two_stage_lr is not None and two_stage_lr <= 0):
            raise ValueError("two_stage_epochs must be >= 0 and two_stage_lr > 0")
        if two_stage_epochs and (init_from is None or freeze_encoder_epochs):
            raise ValueError("two_stage_epochs needs init_from (pretrained weights to freeze) and excludes "
                             "freeze_encoder_epochs")
        # Run-time options stay out of the saved hyperparameters: `sspcmr test --ckpt_path` re-reads those
        # from the checkpoint and would otherwise override what the user asks for now.
        self.save_hyperparameters(ignore=["results_dir", "log_images", *self.RUN_TIME_OPTIONS])
        self.results_dir, self.log_images = results_dir, log_images
        config = UNetConfig(out_channels=num_classes, num_heads=num_heads, norm=norm,
                            **({"channels": tuple(channels)} if channels is not None else {}))
        self.net = UNet(config)
        self.loss = DeepSupervisionLoss(DiceCELoss(ce_weight=ce_weight, dice_weight=dice_weight),
                                        num_scales=self.net.num_outputs, weighting=deep_supervision)
        self.transfer_report: TransferReport | None = None
        # Provenance of the start weights (TransferReport.provenance), carried from checkpoint to checkpoint.
        self.init_provenance: dict | None = None
        self._weights_restored = False  # set by on_load_checkpoint: init_from must not overwrite those weights
        self.evaluator = VolumeEvaluator()
        self._overlay_batch: dict | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path, **overrides) -> Segmentation:
        """A Segmentation rebuilt from an sspcmr checkpoint, read as data only and loaded strictly.

        The checkpoint's saved hyperparameters rebuild the network (``overrides`` replace run-time ones
        such as ``results_dir``); ``init_from`` is never read (its weights are in the checkpoint).

        Raises:
            DataError: unreadable or code-carrying file, not a Segmentation checkpoint, or weights that do
                not fit the network its hyperparameters describe.
        """
        content = load_file(path, "--ckpt")
        if not isinstance(content, dict) or not isinstance(content.get("state_dict"), dict):
            raise DataError(f"--ckpt: {path} is not a Lightning checkpoint (no state_dict)")
        manifest = content.get(MANIFEST_KEY)
        method = manifest.get("method") if isinstance(manifest, dict) else None
        hparams = {k: v for k, v in (content.get("hyper_parameters") or {}).items() if not k.startswith("_")}
        if method != "segmentation":
            raise DataError(f"--ckpt: {path} is not a Segmentation checkpoint (method: {method or 'unknown'}); "
                            "fine-tune it first (sspcmr fit with --model.init_from)")
        trained = dict(content.get("datamodule_hyper_parameters") or {})
        for key in ("output_size", "output_spacing"):  # checkpoints of sspcmr before methods owned their grid
            if key not in hparams and key in trained:
                hparams[key] = trained[key]
        try:
            model = cls(**{**hparams, **overrides})
        except TypeError as error:
            raise DataError(f"--ckpt: {path} holds hyperparameters this sspcmr cannot rebuild ({error})") from None
        missing, unexpected = model.load_state_dict(content["state_dict"], strict=False)
        if missing or unexpected:
            raise DataError(f"--ckpt: {path} does not fit the network its hyperparameters describe: "
                            f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
                            f"(e.g. {unexpected[:2]})")
        model.on_load_checkpoint(content)
        model.eval()
        return model

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Logits per head (highest resolution first) for (B, 1, H, W) images."""
        return self.net(image)

    # -- transfer and manifest ---------------------------------------------------------------------

    def preprocessing(self) -> dict:
        """The resampling grid recorded in the manifest (what a later fine-tuning or inference must match)."""
        return {"output_size": int(self.output_size), "output_spacing": float(self.output_spacing)}

    def train_augmentation(self) -> Augmenter:
        """The reference's augmented view, or the evaluation resampling alone (``augmentation=False``)."""
        if self.hparams.augmentation:
            return presets.segmentation_train(**self.recipe_options())
        return presets.evaluation(output_size=self.output_size, output_spacing=self.output_spacing)

    def validation_augmentation(self) -> Augmenter:
        """Validation slices are scored on the evaluation resampling (image-centred, no augmentation)."""
        return presets.evaluation(output_size=self.output_size, output_spacing=self.output_spacing)

    def check_output_size(self, size: int) -> None:
        """Raise a ValueError unless ``output_size`` fits the U-Net's depth."""
        check_input_size(size, self.net.config)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        self.check_output_size(self.output_size)

    def apply_init_from(self) -> TransferReport | None:
        """Load ``init_from`` into the U-Net now (strictly, see :func:`load_transfer`) and return the report.

        ``fit`` calls this once when it starts from nothing; call it yourself to inspect a transfer without
        training. Returns None without ``init_from``.
        """
        if not self.hparams.init_from:
            return None
        self.transfer_report = load_transfer(self.net, self.hparams.init_from, self.hparams.transfer)
        self.init_provenance = self.transfer_report.provenance()
        return self.transfer_report

    def on_fit_start(self) -> None:
        # Runs after Lightning restored a checkpoint (resume, or a model from load_from_checkpoint): then the
        # weights are this model's own and init_from is not touched.
        if self._weights_restored or not self.hparams.init_from:
            return
        report = self.transfer_report or self.apply_init_from()
        pre = self.preprocessing()
        if report.manifest is not None and self.hparams.check_preprocessing:
            check_preprocessing(report.manifest, pre["output_size"], pre["output_spacing"], report.source)
        rank_zero_info(str(report))
        # The report goes next to the run's logs so a reader can see what the fine-tuning started from.
        logger = self.logger
        if self.trainer.is_global_zero and getattr(logger, "log_dir", None):
            text = json.dumps(report.to_dict(), indent=1)
            atomic_write_bytes(Path(logger.log_dir) / "transfer.json", lambda tmp: tmp.write_text(text))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        # A fine-tuned or scratch U-Net can itself be transferred (encoder and decoder; never its heads).
        checkpoint[MANIFEST_KEY] = build_manifest("segmentation", "net.", ("encoder", "decoder"), self.net.config,
                                                  self.preprocessing(), init_from=self.init_provenance)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self._weights_restored = True
        manifest = checkpoint.get(MANIFEST_KEY)
        if isinstance(manifest, dict) and isinstance(manifest.get("init_from"), dict):
            self.init_provenance = manifest["init_from"]

    # -- training ----------------------------------------------------------------------------------

    def _frozen_stage(self) -> bool:
        return self._trainer is not None and self.current_epoch < self.hparams.two_stage_epochs

    def _transferred_modules(self) -> list[torch.nn.Module]:
        return [self.net.encoder, self.net.decoder][: 2 if self.hparams.transfer == "encoder+decoder" else 1]

    def on_train_epoch_start(self) -> None:
        if self.hparams.two_stage_epochs:
            frozen = self._frozen_stage()
            for module in self._transferred_modules():
                module.requires_grad_(not frozen)
            self.train(self.training)  # re-applies the BatchNorm mode of the frozen parts
            return
        frozen = self.hparams.init_from is not None and self.current_epoch < self.hparams.freeze_encoder_epochs
        (self.net.freeze_encoder if frozen else self.net.unfreeze_encoder)()

    def train(self, mode: bool = True):
        super().train(mode)
        # In the frozen stage the transferred BatchNorm layers keep their pretrained statistics: frozen
        # features, not just frozen weights (Lightning switches the module back to train mode after
        # every validation, hence here).
        if mode and self.hparams.get("two_stage_epochs") and self._frozen_stage():
            for layer in (layer for module in self._transferred_modules() for layer in module.modules()):
                if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
                    layer.eval()
        return self

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.loss(self(batch[K.IMAGE]), batch[K.LABEL])
        self.log_dict({"train/loss": out.total, "train/ce": out.ce, "train/dice_loss": out.dice},
                      on_step=False, on_epoch=True, prog_bar=False, batch_size=batch[K.IMAGE].shape[0], sync_dist=True)
        self.log("loss", out.total, on_step=True, on_epoch=False, prog_bar=True, logger=False)
        return out.total

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        outputs = self(batch[K.IMAGE])
        out = self.loss(outputs, batch[K.LABEL])
        pred = outputs[0].argmax(1)
        dice = slice_dice(pred, batch[K.LABEL].argmax(1)).mean(0)
        size = batch[K.IMAGE].shape[0]
        self.log_dict({"val/loss": out.total, "val/dice": dice.mean(), "val/dice_LV": dice[0],
                       "val/dice_MYO": dice[1], "val/dice_RV": dice[2]},
                      on_epoch=True, prog_bar=False, batch_size=size, sync_dist=True)
        if batch_idx == 0 and self.log_images:
            if self._overlay_batch is None:  # the same slices every epoch, so progress is visible
                self._overlay_batch = {K.IMAGE: batch[K.IMAGE][:8].detach(), K.LABEL: batch[K.LABEL][:8].detach()}
            log_overlays(self, self._overlay_batch)

    def configure_optimizers(self):
        """SGD on all parameters with the reference's polynomial decay per epoch (:class:`SGDPoly`)."""
        h = self.hparams
        recipe = SGDPoly(h.lr, h.momentum, h.nesterov, h.weight_decay, h.poly_power, h.two_stage_epochs, h.two_stage_lr)
        return recipe.configure(list(self.named_parameters()), self.trainer.max_epochs)

    # -- evaluation in native space -------------------------------------------------------------

    def on_test_epoch_start(self) -> None:
        self.evaluator.reset()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        if K.PHASE not in batch:
            raise ValueError("test needs whole volumes: use CineDataModule(mode='segment' or 'volumes')")
        native = batch[K.NATIVE_LABEL]
        pred = volume_labels(self, batch)
        height, width = pred.shape[-2:]
        self.evaluator.add(batch, pred.cpu(), native[:, 0, :height, :width].cpu())

    def on_test_epoch_end(self) -> None:
        rows = self.evaluator.gather(self.trainer.strategy)
        if self.trainer.is_global_zero:
            out = Path(self.results_dir or self._default_results_dir())
            summary = self.evaluator.write(rows, out)
            count = len(rows["volumes"])
            print(f"\nTest results ({count} volumes, native resolution) -> {out}\n{self.evaluator.table}")
            for key, value in summary.items():
                self.log(f"test/{key}", float(value), rank_zero_only=True, sync_dist=False)

    # -- prediction ----------------------------------------------------------------------------

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        """Labels of one whole (subject, phase) volume on the prepared (native, border-cropped) grid.

        Returns ``{"dataset", "subject", "phase", "subject_index", "labels"}`` with ``labels`` a (Z, H, W)
        uint8 CPU tensor (head 0, the inverse of the evaluation resampling, argmax; as ``test_step``);
        :class:`sspcmr.evaluation.writer.NiftiPredictionWriter` writes them on the raw cine's grid.
        """
        if K.PHASE not in batch:
            raise ValueError("predict needs whole volumes: use CineDataModule(mode='segment' or 'volumes')")
        pred = volume_labels(self, batch)
        return {
            "dataset": str(batch[K.DATASET][0]),
            "subject": str(batch[K.SUBJECT][0]),
            "phase": str(batch[K.PHASE]),
            "subject_index": int(batch[K.SUBJECT_INDEX][0]),
            "labels": pred.to(torch.uint8).cpu(),
        }

    def _default_results_dir(self) -> str:
        logger = self.logger
        if logger is not None and getattr(logger, "log_dir", None):
            return str(Path(logger.log_dir) / "results")
        return "results"
