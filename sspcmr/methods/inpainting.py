"""``Inpainting``: context prediction and context restoration (Dominic et al. 2023), the U-Net undoes a corruption.

Dominic et al.: K x K patches are set to the image mean (context prediction) or pairs of them swapped (context
restoration), one after another until at least 1/4 of the image is corrupted; the U-Net with a linear
one-channel output restores the original, trained with an L2 loss over all pixels. 100 corruption layouts
are drawn before training and used at 0, 90, 180 and 270 degrees; every image draws one per iteration. The
paper's best: restoration with 32 x 32 Poisson-disc patches on 512 x 512 images, then transferring the
encoder only.

sspcmr keeps the shared U-Net, data module and MIM's optimiser so that a study compares the pretext tasks
and nothing else (the paper's Adam recipe is described in docs/methods/inpainting.md). The layouts
(:class:`~sspcmr.corruptions.inpainting.MaskBank`) are built for the size of the first batch from ``mask_seed``
and are not saved (the seed rebuilds them); the draws come from the module's own generator, one stream per
rank, saved in checkpoints; the validation draws restart every epoch, as MIM's masks do
(:class:`~sspcmr.methods.reconstruction.Reconstruction`).
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from sspcmr.checks import check_choice, check_int, check_number
from sspcmr.corruptions.inpainting import MaskBank
from sspcmr.losses.reconstruction import masked_mse, restoration_loss
from sspcmr.methods.reconstruction import Reconstruction


class Inpainting(Reconstruction):
    """Inpainting pretraining with the full U-Net: context prediction or context restoration.

    The U-Net's ``norm`` is the shared one (``batch``); the paper used group normalisation with weight
    standardisation. The SGD recipe is MIM's (the paper's Adam recipe: docs/methods/inpainting.md).

    Args:
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
        **kwargs: the SGD recipe and ``log_images`` (:class:`~sspcmr.methods.reconstruction.Reconstruction`),
            the U-Net, probe and monitor options (:class:`~sspcmr.methods.pretrain.Pretraining`), the output
            grid, intensity convention, centring and augmentation seed (:class:`~sspcmr.methods.base.CineModule`).
    """

    method = "inpainting"

    def __init__(
        self,
        task: Literal["restoration", "prediction"] = "restoration",
        patch_size: int = 32,
        placement: Literal["poisson", "random"] = "poisson",
        coverage: float = 0.25,
        bank_size: int = 100,
        fill_value: float = 0.0,
        mask_seed: int = 0,
        loss_reduction: Literal["mean", "sum"] = "mean",
        **kwargs: Any,
    ) -> None:
        check_choice("task", task, ("restoration", "prediction"))
        check_choice("placement", placement, ("poisson", "random"))
        check_choice("loss_reduction", loss_reduction, ("mean", "sum"))
        check_int("patch_size", patch_size, 1)
        check_number("coverage", coverage, 0, 1, low_open=True)
        check_int("bank_size", bank_size, 1)
        check_number("fill_value", fill_value)
        check_int("mask_seed", mask_seed, 0)  # NumPy draws the layouts
        super().__init__(**kwargs)
        self._bank: MaskBank | None = None  # built for the first batch's size; rebuilt from the seed, not saved

    def check_output_size(self, size: int) -> None:
        super().check_output_size(size)
        h = self.hparams
        largest = size // 2 if h.task == "restoration" else size  # restoration swaps two disjoint patches
        if h.patch_size > largest:
            raise ValueError(f"patch_size {h.patch_size} does not fit output_size {size}: {h.task} needs "
                             f"patch_size <= {largest}")

    def bank(self, size: int) -> MaskBank:
        """The corruption layouts for ``size`` x ``size`` images (built on first use)."""
        if self._bank is None or self._bank.size != size:
            h = self.hparams
            self._bank = MaskBank(size, h.patch_size, mode=h.task, placement=h.placement, coverage=h.coverage,
                                  count=h.bank_size, fill_value=h.fill_value, seed=h.mask_seed)
        return self._bank

    def corrupt(self, image: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One of the layouts per image, drawn from ``generator``, applied to ``image``."""
        if image.shape[-1] != image.shape[-2]:
            raise ValueError(f"inpainting needs square images; got {tuple(image.shape)}")
        return self.bank(image.shape[-1]).corrupt(image, generator)

    def reconstruction_loss(self, output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The squared error over all pixels (``loss_reduction``)."""
        return restoration_loss(output, image, self.hparams.loss_reduction)

    def log_validation_extras(self, out: dict[str, torch.Tensor], image: torch.Tensor) -> None:
        # Uncorrupted pixels are copied through easily; the error on the corrupted ones is the informative part.
        self.log("val/loss_corrupted", masked_mse(out["output"], image, out["mask"]), on_epoch=True,
                 batch_size=image.shape[0], sync_dist=True)
