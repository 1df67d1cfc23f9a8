"""``Inpainting``: context prediction and context restoration (Dominic et al. 2023), the U-Net undoes a corruption.

Dominic et al.: K x K patches are set to the image mean (context prediction) or pairs of them swapped (context
restoration), one after another until at least 1/4 of the image is corrupted; the U-Net with a linear
one-channel output restores the original, trained with an L2 loss over all pixels. 100 corruption layouts
are drawn before training and used at 0, 90, 180 and 270 degrees; every image draws one per iteration. The
paper's best: restoration with 32 x 32 Poisson-disc patches on 512 x 512 images, then transferring the
encoder only.

sspcmr keeps the shared U-Net, data module and MIM's optimiser so that a study compares the pretext tasks
and nothing else (the paper's Adam recipe is described in docs/methods/inpainting.md). The layouts
(:class:`~sspcmr.losses.inpainting.MaskBank`) are built for the size of the first batch from ``mask_seed``
and are not saved (the seed rebuilds them); the draws come from the module's own generator, one stream per
rank, saved in checkpoints; the validation draws restart every epoch, as MIM's masks do.
"""

from __future__ import annotations

from typing import Literal

import torch

from sspcmr.checks import check_choice, check_int, check_number
from sspcmr.data import keys as K
from sspcmr.losses.inpainting import MaskBank
from sspcmr.losses.masking import masked_mse
from sspcmr.methods.pretrain import Pretraining, global_pool
from sspcmr.methods.visuals import log_image, reconstruction_grid
from sspcmr.models import UNet


def restoration_loss(output: torch.Tensor, target: torch.Tensor, reduction: Literal["mean", "sum"]) -> torch.Tensor:
    """L2 loss over all pixels in float32: ``mean`` over every element, or the paper's eq. A1 (``sum`` over
    the pixels of each image and channel, mean over batch and channels), which is ``H·W`` times the mean."""
    squared = (output.float() - target.float()).square()
    if reduction == "sum":
        return squared.sum(dim=(2, 3)).mean()
    return squared.mean()


class Inpainting(Pretraining):
    """Inpainting pretraining with the full U-Net: context prediction or context restoration.

    Args:
        channels: U-Net channels per stage (reference 32, 64, 128, 256, 512, 512, 512); the fine-tuning
            U-Net must use the same.
        norm: normalisation layer of the U-Net (``batch``; the paper used group normalisation with weight
            standardisation, sspcmr keeps the shared U-Net).
        task: ``restoration`` (context restoration: swap pairs of patches; the paper's best) or
            ``prediction`` (context prediction: set patches to ``fill_value``). Not called ``mode``: Lightning
            merges the model's and the data module's hyperparameters, and ``--data.mode`` exists.
        patch_size: patch side K in output pixels (32; the paper's best on 512 px images, where it is 1/16 of
            the side; at 256 px, 32 px is 1/8 of the side, 40 mm at 1.25 mm; 16 px keeps the paper's
            fraction of the field of view).
        placement: ``poisson`` (patch centres at least K·√2 apart, no overlaps; the paper's best) or ``random``
            (uniform, each patch inside the image).
        coverage: fraction of the image area corrupted at least (the paper: 0.25).
        bank_size: base corruption layouts drawn before training, each also used rotated by 90, 180 and 270
            degrees (the paper: 100, so 400 layouts).
        fill_value: value of the corrupted pixels in prediction mode, in standardised units (0.0, the image
            mean, the paper's choice); unused by restoration.
        mask_seed: seed of the layouts (all ranks share them) and of the draws (rank r draws from
            ``mask_seed + 1009 r``).
        loss_reduction: ``mean`` (the mean squared error over all pixels) or ``sum`` (the paper's eq. A1,
            summed over the pixels of each image: H·W times larger, so the same as ``mean`` with H·W times
            the learning rate under SGD; weight decay not scaled).
        lr: learning rate (MIM's 0.01), cosine-annealed per epoch to 0 over ``trainer.max_epochs``.
        momentum: SGD momentum (MIM's 0.99).
        nesterov: Nesterov momentum (MIM's True).
        weight_decay: weight decay on all parameters (MIM's 3e-5).
        log_images: log original, corrupted input, output and mask of a fixed validation batch to
            TensorBoard each validation epoch.
        probe: fit the online slice-position probe on the validation slices.
        probe_max_samples: validation rows per rank the probe keeps per epoch.
        monitor_every_n_steps: collapse monitors every this many steps (0: ``trainer.log_every_n_steps``).
    """

    method = "inpainting"
    views = "single"
    also_views = ("mim",)  # the same one-view recipe
    transferable = ("encoder", "decoder")

    def __init__(
        self,
        channels: list[int] | None = None,
        norm: str = "batch",
        task: Literal["restoration", "prediction"] = "restoration",
        patch_size: int = 32,
        placement: Literal["poisson", "random"] = "poisson",
        coverage: float = 0.25,
        bank_size: int = 100,
        fill_value: float = 0.0,
        mask_seed: int = 0,
        loss_reduction: Literal["mean", "sum"] = "mean",
        lr: float = 0.01,
        momentum: float = 0.99,
        nesterov: bool = True,
        weight_decay: float = 3e-5,
        log_images: bool = True,
        probe: bool = True,
        probe_max_samples: int = 4096,
        monitor_every_n_steps: int = 0,
    ) -> None:
        # Same optimiser recipe as MIM (the reference's reconstruction method) on the same backbone, so that
        # a study comparing pretext tasks changes nothing but the task.
        super().__init__(channels, norm, lr, momentum, nesterov, weight_decay, probe, probe_max_samples,
                         monitor_every_n_steps)
        check_choice("task", task, ("restoration", "prediction"))
        check_choice("placement", placement, ("poisson", "random"))
        check_choice("loss_reduction", loss_reduction, ("mean", "sum"))
        check_int("patch_size", patch_size, 1)
        check_number("coverage", coverage, 0, 1, low_open=True)
        check_int("bank_size", bank_size, 1)
        check_number("fill_value", fill_value)
        check_int("mask_seed", mask_seed, 0)  # NumPy draws the layouts
        self.save_hyperparameters(ignore=["log_images"])
        self.log_images = log_images
        self.backbone = UNet(self.unet_config(out_channels=1, num_heads=1))
        self._bank: MaskBank | None = None  # built for the first batch's size; rebuilt from the seed, not saved
        self.mask_generator: torch.Generator | None = None
        self._val_generator: torch.Generator | None = None

    def check_output_size(self, size: int) -> None:
        super().check_output_size(size)
        h = self.hparams
        largest = size // 2 if h.task == "restoration" else size  # restoration swaps two disjoint patches
        if h.patch_size > largest:
            raise ValueError(f"patch_size {h.patch_size} does not fit output_size {size}: {h.task} needs "
                             f"patch_size <= {largest}")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Restored image (B, 1, H, W) of (corrupted) images."""
        return self.backbone.forward_logits(images)

    def bank(self, size: int) -> MaskBank:
        """The corruption layouts for ``size`` x ``size`` images (built on first use)."""
        if self._bank is None or self._bank.size != size:
            h = self.hparams
            self._bank = MaskBank(size, h.patch_size, mode=h.task, placement=h.placement, coverage=h.coverage,
                                  count=h.bank_size, fill_value=h.fill_value, seed=h.mask_seed)
        return self._bank

    def _rank_seed(self) -> int:
        rank = self.trainer.global_rank if self._trainer is not None else 0
        return self.hparams.mask_seed + 1009 * rank

    def _train_generator(self) -> torch.Generator:
        if self.mask_generator is None:
            self.mask_generator = torch.Generator().manual_seed(self._rank_seed())
        return self.mask_generator

    def _restore(self, image: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if image.shape[-1] != image.shape[-2]:
            raise ValueError(f"inpainting needs square images; got {tuple(image.shape)}")
        corrupted, mask = self.bank(image.shape[-1]).corrupt(image, generator)
        features = self.backbone.encoder(corrupted)
        output = self.backbone.heads[0](self.backbone.decoder(features)[0])
        loss = restoration_loss(output, image, self.hparams.loss_reduction)
        return {"loss": loss, "output": output, "corrupted": corrupted, "mask": mask,
                "pooled": global_pool(features[-1])}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        image = batch[K.IMAGE]
        out = self._restore(image, self._train_generator())
        self.log("train/loss", out["loss"], on_step=True, on_epoch=True, prog_bar=True, batch_size=image.shape[0])
        if self.monitor_due():
            self.log_collapse(out["pooled"])
        return out["loss"]

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._val_generator = torch.Generator().manual_seed(self._rank_seed() + 1)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        image = batch[K.IMAGE]
        out = self._restore(image, self._val_generator)
        size = image.shape[0]
        self.log("val/loss", out["loss"], on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True)
        # Uncorrupted pixels are copied through easily; the error on the corrupted ones is the informative part.
        self.log("val/loss_corrupted", masked_mse(out["output"], image, out["mask"]), on_epoch=True,
                 batch_size=size, sync_dist=True)
        self.probe_features(image, batch)
        if batch_idx == 0 and self.log_images:
            count = min(8, size)
            grid = reconstruction_grid(image[:count], out["corrupted"][:count], out["output"][:count],
                                       out["mask"][:count])
            log_image(self, "val/reconstructions", grid)

    # The draw stream is part of the run's state: a resumed run continues it instead of repeating draws.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.mask_generator is not None:
            checkpoint["sspcmr_mask_generator"] = self.mask_generator.get_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("sspcmr_mask_generator")
        if state is not None:
            self.mask_generator = torch.Generator()
            self.mask_generator.set_state(state)
