"""``MIM``: masked image modelling, the U-Net reconstructs the patches hidden from it.

Reference code: the whole U-Net with a single full-resolution 1-channel head (no
deep supervision); the augmented, standardised batch is cut into 32x32 patches on a grid from (0, 0),
75 % of them (48 of 64 at 256 px) set to 0.0 per image; the loss is the squared error over the masked
pixels only, pooled over the batch; SGD Nesterov momentum 0.99, weight decay 3e-5, learning rate 0.01
cosine-annealed over 100 epochs; 128 slices per batch; fp16 mixed precision. The encoder and decoder
transfer (the paper fine-tuned both), never the 1-channel head.

Masks come from the module's own generator (seeded, saved in checkpoints, one stream per rank); the
validation masks restart from the same seed every epoch, so validation losses of different epochs see
the same masks and are comparable (the reference drew them from the running global RNG).
"""

from __future__ import annotations

import torch

from sspcmr.checks import check_int, check_number
from sspcmr.data import keys as K
from sspcmr.losses.masking import PatchMasker, masked_mse
from sspcmr.methods.pretrain import Pretraining, global_pool
from sspcmr.methods.visuals import log_image, reconstruction_grid
from sspcmr.models import UNet


class MIM(Pretraining):
    """Masked image modelling with the full U-Net.

    Args:
        channels: U-Net channels per stage (reference 32, 64, 128, 256, 512, 512, 512); the fine-tuning
            U-Net must use the same.
        norm: normalisation layer of the U-Net (``batch``, reference).
        patch_size: side of the square patches in output pixels (reference 32); the image side must be a
            multiple of it.
        mask_ratio: fraction of the patches masked per image, rounded to a count (reference 0.75).
        mask_value: value of masked pixels in standardised units (reference 0.0, about the subject mean).
        mask_seed: seed of the mask generator (rank r uses ``mask_seed + 1009 r``).
        lr: learning rate (reference 0.01), cosine-annealed per epoch to 0 over ``trainer.max_epochs``.
        momentum: SGD momentum (reference 0.99).
        nesterov: Nesterov momentum (reference True).
        weight_decay: weight decay on all parameters (reference 3e-5).
        log_images: log input, masked input, reconstruction and mask of a fixed validation batch to
            TensorBoard each validation epoch.
        probe: fit the online slice-position probe on the validation slices.
        probe_max_samples: validation rows per rank the probe keeps per epoch.
        monitor_every_n_steps: collapse monitors every this many steps (0: ``trainer.log_every_n_steps``).
    """

    method = "mim"
    views = "mim"
    also_views = ("single",)  # the same one-view recipe
    transferable = ("encoder", "decoder")

    def __init__(
        self,
        channels: list[int] | None = None,
        norm: str = "batch",
        patch_size: int = 32,
        mask_ratio: float = 0.75,
        mask_value: float = 0.0,
        mask_seed: int = 0,
        lr: float = 0.01,
        momentum: float = 0.99,
        nesterov: bool = True,
        weight_decay: float = 3e-5,
        log_images: bool = True,
        probe: bool = True,
        probe_max_samples: int = 4096,
        monitor_every_n_steps: int = 0,
    ) -> None:
        super().__init__(channels, norm, lr, momentum, nesterov, weight_decay, probe, probe_max_samples,
                         monitor_every_n_steps)
        check_int("patch_size", patch_size, 1)
        check_number("mask_ratio", mask_ratio, 0, 1, low_open=True)
        check_number("mask_value", mask_value)
        check_int("mask_seed", mask_seed)
        self.save_hyperparameters(ignore=["log_images"])
        self.log_images = log_images
        self.backbone = UNet(self.unet_config(out_channels=1, num_heads=1))
        self.masker = PatchMasker(patch_size=patch_size, ratio=mask_ratio, fill_value=mask_value)
        self.mask_generator: torch.Generator | None = None
        self._val_generator: torch.Generator | None = None

    def check_output_size(self, size: int) -> None:
        super().check_output_size(size)
        patch = self.hparams.patch_size
        if size % patch:
            raise ValueError(f"output_size {size} is not a multiple of MIM's patch_size {patch} (use a multiple of "
                             f"{patch}, or a patch_size that divides {size})")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruction (B, 1, H, W) of (masked) images."""
        return self.backbone.forward_logits(images)

    def _rank_seed(self) -> int:
        rank = self.trainer.global_rank if self._trainer is not None else 0
        return self.hparams.mask_seed + 1009 * rank

    def _train_generator(self) -> torch.Generator:
        if self.mask_generator is None:
            self.mask_generator = torch.Generator().manual_seed(self._rank_seed())
        return self.mask_generator

    def _reconstruct(self, image: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        masked, mask = self.masker(image, generator)
        features = self.backbone.encoder(masked)
        output = self.backbone.heads[0](self.backbone.decoder(features)[0])
        loss = masked_mse(output, image, mask)
        return {"loss": loss, "output": output, "masked": masked, "mask": mask, "pooled": global_pool(features[-1])}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        image = batch[K.IMAGE]
        out = self._reconstruct(image, self._train_generator())
        self.log("train/loss", out["loss"], on_step=True, on_epoch=True, prog_bar=True, batch_size=image.shape[0])
        if self.monitor_due():
            self.log_collapse(out["pooled"])
        return out["loss"]

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._val_generator = torch.Generator().manual_seed(self._rank_seed() + 1)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        image = batch[K.IMAGE]
        out = self._reconstruct(image, self._val_generator)
        self.log("val/loss", out["loss"], on_epoch=True, prog_bar=True, batch_size=image.shape[0], sync_dist=True)
        self.probe_features(image, batch)
        if batch_idx == 0 and self.log_images:
            count = min(8, image.shape[0])
            grid = reconstruction_grid(image[:count], out["masked"][:count], out["output"][:count],
                                       out["mask"][:count])
            log_image(self, "val/reconstructions", grid)

    # The mask stream is part of the run's state: a resumed run continues it instead of repeating masks.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.mask_generator is not None:
            checkpoint["sspcmr_mask_generator"] = self.mask_generator.get_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("sspcmr_mask_generator")
        if state is not None:
            self.mask_generator = torch.Generator()
            self.mask_generator.set_state(state)
