"""The corruptions of inpainting pretraining (Dominic et al. 2023): context prediction and context restoration.

Context prediction overwrites square K x K patches with a constant, context restoration swaps the contents of
pairs of non-overlapping K x K patches (so the image keeps its intensity histogram); either way patches are
added one at a time (restoration: one pair at a time) until at least ``coverage`` (the paper: 1/4) of the
image area is corrupted. As in the paper, ``count`` layouts are drawn once, before training, and each is also
used rotated by 90, 180 and 270 degrees counter-clockwise, so every image draws one of ``4 · count`` layouts.

A layout is stored as a pixel mask (both modes) and, for restoration, as a source-index map: for each pixel
the flat index of the pixel it takes its value from (the identity outside the patches). Corrupting a batch is
then one ``masked_fill`` or one ``gather``, the same locations for every channel. Only the ``count`` base
layouts are stored; the rotations are applied to the drawn index maps on the fly (four times less memory:
the 100 base maps of 256 px images take 26 MB as int32).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from sspcmr.transforms.host_to_device import host_to_device

__all__ = ["MaskBank"]

Mode = Literal["prediction", "restoration"]
Placement = Literal["random", "poisson"]

# Uniform proposals tried before drawing from the explicit list of free positions (same distribution, the
# list is only built when free positions have become rare).
_PROPOSALS = 32


def _window(placement: Placement, k: int, row: int, col: int, free: int) -> tuple[slice, slice, np.ndarray]:
    """Corners (of a ``free`` x ``free`` grid) that a K x K patch at (row, col) rules out for another patch.

    Poisson-disc: squared centre distance below 2K² (integers, so the comparison is exact); random placement
    (restoration): the two squares overlap, i.e. both offsets are below K. Returns the window's row and
    column slices into the grid and the bool mask of ruled-out corners inside it.
    """
    reach = math.isqrt(2 * k * k - 1) if placement == "poisson" else k - 1
    rows = slice(max(0, row - reach), min(free, row + reach + 1))
    cols = slice(max(0, col - reach), min(free, col + reach + 1))
    dy = np.arange(rows.start, rows.stop)[:, None] - row
    dx = np.arange(cols.start, cols.stop)[None, :] - col
    if placement == "poisson":
        return rows, cols, dy * dy + dx * dx < 2 * k * k
    return rows, cols, (np.abs(dy) < k) & (np.abs(dx) < k)


class MaskBank:
    """Precomputed corruption layouts of one image size, and the batched corruption with them.

    Patch placement (top-left corners on the integer grid, each patch wholly inside the image):

    * ``random``: uniform corners. Prediction patches may overlap one another (more patches are then needed
      to reach the coverage). Restoration patches never overlap: the two patches of a pair are disjoint and
      a new pair avoids every earlier patch, otherwise a pixel would belong to two swaps and the swap would
      depend on their order. Touching edges are allowed.
    * ``poisson`` (Poisson-disc): every patch centre at least ``K·√2`` from every other, so no two patches
      overlap (two K x K squares overlap only if both centre offsets are below K, i.e. their distance is
      below ``K·√2``).

    Each new patch is uniform over the positions still allowed (dart throwing: uniform proposals, falling back
    to a draw from the list of free positions once proposals keep being rejected). For a restoration pair the
    first patch is only taken where a partner still fits, so a pair is never left half placed. When no
    allowed position is left before the coverage is reached the layout starts again, at most ``max_restarts``
    times; then a ``ValueError`` says which setting to change.

    Args:
        size: image side S in pixels (square images).
        patch_size: patch side K in pixels, 1 <= K <= S (restoration: 2K <= S, so a pair fits).
        mode: ``prediction`` (patches set to ``fill_value``) or ``restoration`` (pairs of patches swapped).
        placement: ``poisson`` (centres at least K·√2 apart, no overlaps) or ``random`` (uniform corners).
        coverage: fraction of the image area corrupted at least, in (0, 1] (the paper: 0.25).
        count: number of base layouts (the paper: 100; 4 · count with the rotations).
        fill_value: value of the corrupted pixels in prediction mode (0.0: the image mean after
            standardisation, the paper's choice); unused by restoration.
        seed: seed of the layouts; the same seed gives the same layouts.
        max_restarts: attempts per layout before giving up.
    """

    def __init__(
        self,
        size: int,
        patch_size: int,
        mode: Mode = "restoration",
        placement: Placement = "poisson",
        coverage: float = 0.25,
        count: int = 100,
        fill_value: float = 0.0,
        seed: int = 0,
        max_restarts: int = 100,
    ) -> None:
        if mode not in ("prediction", "restoration"):
            raise ValueError(f"mode must be prediction or restoration; got {mode!r}")
        if placement not in ("random", "poisson"):
            raise ValueError(f"placement must be random or poisson; got {placement!r}")
        if size < 1 or not 1 <= patch_size <= size:
            raise ValueError(f"patch_size must be in [1, size]; got patch_size={patch_size}, size={size}")
        if mode == "restoration" and 2 * patch_size > size:
            raise ValueError(f"context restoration swaps two non-overlapping {patch_size}x{patch_size} patches, "
                             f"which do not fit in a {size}x{size} image; use patch_size <= {size // 2}")
        if not 0 < coverage <= 1:
            raise ValueError(f"coverage must be in (0, 1]; got {coverage}")
        if count < 1 or max_restarts < 1:
            raise ValueError(f"count and max_restarts must be >= 1; got {count}, {max_restarts}")
        self.size, self.patch_size, self.mode, self.placement = int(size), int(patch_size), mode, placement
        self.coverage, self.count, self.fill_value = float(coverage), int(count), float(fill_value)
        self.seed, self.max_restarts = int(seed), int(max_restarts)
        self.target = math.ceil(self.coverage * self.size**2)  # corrupted pixels needed per layout
        if mode == "restoration" or placement == "poisson":  # disjoint patches: each step adds a fixed area
            step = self._patches_per_step() * patch_size**2
            if math.ceil(self.target / step) * step > size**2:
                raise ValueError(self._impossible("that many non-overlapping patches do not fit"))

        rng = np.random.default_rng(self.seed)
        #: top-left corners (row, col) of each base layout's patches, (n, 2) int arrays in the order placed;
        #: for restoration rows 2j and 2j + 1 are the j-th swapped pair.
        self.corners: list[np.ndarray] = [self._layout(rng) for _ in range(self.count)]
        masks = np.zeros((self.count, size, size), dtype=bool)
        k = self.patch_size
        for i, corners in enumerate(self.corners):
            for row, col in corners:
                masks[i, row:row + k, col:col + k] = True
        self.masks = torch.from_numpy(masks)  # (count, S, S) bool, base layouts
        self.sources: Tensor | None = None  # (count, S, S) int32 source-index maps (restoration)
        if mode == "restoration":
            sources = np.broadcast_to(np.arange(size * size, dtype=np.int32).reshape(size, size),
                                      (self.count, size, size)).copy()
            identity = sources[0].copy()
            for i, corners in enumerate(self.corners):
                for (r1, c1), (r2, c2) in zip(corners[0::2], corners[1::2], strict=True):
                    sources[i, r1:r1 + k, c1:c1 + k] = identity[r2:r2 + k, c2:c2 + k]
                    sources[i, r2:r2 + k, c2:c2 + k] = identity[r1:r1 + k, c1:c1 + k]
            self.sources = torch.from_numpy(sources)
        self._device_cache: dict[torch.device, dict[str, Tensor]] = {}

    def __len__(self) -> int:
        """Number of layouts an image can draw: the base layouts and their three rotations."""
        return 4 * self.count

    def __repr__(self) -> str:
        return (f"MaskBank(size={self.size}, patch_size={self.patch_size}, mode={self.mode!r}, "
                f"placement={self.placement!r}, coverage={self.coverage}, count={self.count}, seed={self.seed})")

    # -- building the layouts -------------------------------------------------------------------------

    def _patches_per_step(self) -> int:
        return 2 if self.mode == "restoration" else 1

    def _impossible(self, why: str) -> str:
        return (f"cannot corrupt {self.coverage:g} of a {self.size}x{self.size} image with {self.patch_size}x"
                f"{self.patch_size} {self.mode} patches placed {self.placement}: {why}. Use a smaller patch_size, "
                f"a lower coverage or placement random")

    def _blocked(self, row: int, col: int) -> tuple[slice, slice, np.ndarray]:
        """The corners a patch at (row, col) rules out: window slices into the corner grid and a bool mask."""
        return _window(self.placement, self.patch_size, row, col, self.size - self.patch_size + 1)

    @staticmethod
    def _pick(allowed: np.ndarray, rng: np.random.Generator) -> tuple[int, int] | None:
        """A uniform corner among the ``allowed`` ones (None if there is none)."""
        proposals = rng.integers(0, allowed.shape, size=(_PROPOSALS, 2))
        accepted = np.flatnonzero(allowed[proposals[:, 0], proposals[:, 1]])
        if accepted.size:  # the first accepted of i.i.d. uniform proposals is uniform over the allowed corners
            row, col = proposals[accepted[0]]
            return int(row), int(col)
        flat = np.flatnonzero(allowed)
        if flat.size == 0:
            return None
        row, col = np.unravel_index(int(flat[rng.integers(flat.size)]), allowed.shape)
        return int(row), int(col)

    def _layout(self, rng: np.random.Generator) -> np.ndarray:
        for _ in range(self.max_restarts):
            corners = self._try_layout(rng)
            if corners is not None:
                return corners
        raise ValueError(self._impossible(f"no layout found in {self.max_restarts} attempts (the patches jam "
                                          f"before the coverage is reached)"))

    def _try_layout(self, rng: np.random.Generator) -> np.ndarray | None:
        k, free = self.patch_size, self.size - self.patch_size + 1
        allowed = np.ones((free, free), dtype=bool)
        corners: list[tuple[int, int]] = []
        if self.mode == "prediction" and self.placement == "random":
            # Overlaps allowed: count the union. A patch always fits, but one that only covers pixels already
            # corrupted adds nothing, so bound the number of patches.
            covered = np.zeros((self.size, self.size), dtype=bool)
            area = 0
            for _ in range(64 * math.ceil(self.size**2 / k**2)):
                row, col = self._pick(allowed, rng)  # type: ignore[misc]
                corners.append((row, col))
                window = covered[row:row + k, col:col + k]
                area += int(k * k - window.sum())
                window[:] = True
                if area >= self.target:
                    return np.asarray(corners, dtype=np.int64)
            return None
        step = self._patches_per_step() * k * k  # disjoint patches: every step adds exactly this many pixels
        for _ in range(math.ceil(self.target / step)):
            if self.mode == "prediction":
                corner = self._pick(allowed, rng)
                if corner is None:
                    return None
                self._block(allowed, *corner)
                corners.append(corner)
                continue
            pair = self._pick_pair(allowed, rng)
            if pair is None:
                return None
            corners.extend(pair)
        return np.asarray(corners, dtype=np.int64).reshape(-1, 2)

    def _block(self, allowed: np.ndarray, row: int, col: int) -> None:
        rows, cols, blocked = self._blocked(row, col)
        allowed[rows, cols] &= ~blocked

    def _pick_pair(self, allowed: np.ndarray, rng: np.random.Generator) -> list[tuple[int, int]] | None:
        """Two corners for a swap, both allowed and apart; ``allowed`` is updated for both."""
        starts = allowed
        for _ in range(2):
            first = self._pick(starts, rng)
            if first is None:
                return None
            partners = allowed.copy()
            self._block(partners, *first)
            second = self._pick(partners, rng)
            if second is not None:
                self._block(partners, *second)
                allowed[:] = partners
                return [first, second]
            # That first corner has no partner: restrict the first corners to those that have one, so the
            # retry cannot fail (the draw stays uniform over them).
            starts = allowed & self._have_partner(allowed)
        return None

    def _have_partner(self, allowed: np.ndarray) -> np.ndarray:
        """For each corner, whether some allowed corner is not ruled out by a patch there.

        The allowed corners a patch at p rules out are a correlation of ``allowed`` with the (symmetric)
        blocking window, computed by FFT; p has a partner where fewer than all allowed corners are ruled out.
        """
        centre = self.size  # a corner far from the edges of a large grid gives the whole (odd-sided) window
        _, _, blocked = _window(self.placement, self.patch_size, centre, centre, 2 * self.size + 1)
        shape = tuple(a + b - 1 for a, b in zip(allowed.shape, blocked.shape, strict=True))
        full = np.fft.irfft2(np.fft.rfft2(allowed.astype(np.float64), shape) * np.fft.rfft2(blocked, shape), shape)
        reach = blocked.shape[0] // 2  # the window is centred on p: crop the 'same' part of the full result
        ruled_out = np.rint(full[reach:reach + allowed.shape[0], reach:reach + allowed.shape[1]])
        return ruled_out < allowed.sum()

    # -- using the layouts ----------------------------------------------------------------------------

    def _on(self, device: torch.device) -> dict[str, Tensor]:
        """The bank's tensors on ``device`` (moved once, then cached)."""
        if device not in self._device_cache:
            s = self.size
            identity = torch.arange(s * s).view(s, s)
            # Rotating a layout by k quarter turns: corrupt(J) -> rot_k(corrupt(rot_-k(J))). For an index map
            # this is rot_k(table_k[source]) with table_k = rot_-k(identity) flattened (the index in J of the
            # pixel at each position of rot_-k(J)).
            tables = torch.stack([torch.rot90(identity, -k, (0, 1)).flatten() for k in range(4)])
            tensors = {"masks": host_to_device(self.masks, device), "tables": host_to_device(tables, device)}
            if self.sources is not None:
                tensors["sources"] = host_to_device(self.sources, device)
            self._device_cache[device] = tensors
        return self._device_cache[device]

    def layout(self, indices: Tensor, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor | None]:
        """Masks and source-index maps of layouts ``indices`` in ``[0, 4 · count)``.

        Index ``i`` is base layout ``i % count`` rotated by ``i // count`` quarter turns counter-clockwise.
        Indices on the host (as :meth:`draw` gives them) are checked and grouped by rotation there, so that
        building the layouts on a device needs no host synchronisation.

        Returns:
            ``(mask, source)``: (N, S, S) bool masks and, for restoration, (N, S, S) int64 maps giving for each
            pixel the flat index (row · S + col) of the pixel it takes its value from (None for prediction).
        """
        indices = torch.as_tensor(indices, dtype=torch.long).flatten()
        if indices.numel() and (indices.min() < 0 or indices.max() >= len(self)):
            raise ValueError(f"layout indices must be in [0, {len(self)}); got {indices.tolist()}")
        bank = self._on(torch.device(device))
        target = bank["masks"].device
        base, turns = host_to_device(indices % self.count, target), indices // self.count
        mask = bank["masks"][base]
        source = bank["sources"][base].long() if self.sources is not None else None
        for k in range(1, 4):  # one vectorised rotation per quarter turn present in the batch
            chosen = (turns == k).nonzero().flatten()  # where the indices are: the host, as drawn
            if chosen.numel() == 0:
                continue
            chosen = host_to_device(chosen, target)
            mask[chosen] = torch.rot90(mask[chosen], k, (1, 2))
            if source is not None:
                source[chosen] = torch.rot90(bank["tables"][k][source[chosen]], k, (1, 2))
        return mask, source

    def draw(self, batch: int, generator: torch.Generator | None = None) -> Tensor:
        """``batch`` layout indices, uniform over the ``4 · count`` layouts, drawn on the CPU (so a seeded
        generator gives the same layouts on any device)."""
        return torch.randint(len(self), (batch,), generator=generator)

    def apply(self, images: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
        """Corrupt image ``b`` with layout ``indices[b]``, the same locations in every channel.

        Args:
            images: (B, C, S, S) images; not modified.
            indices: (B,) layout indices (see :meth:`layout`).

        Returns:
            ``(corrupted, mask)``: the corrupted copy and the (B, 1, S, S) mask of corrupted pixels (1.0), in the
            images' dtype and device.
        """
        if images.ndim != 4 or images.shape[-2:] != (self.size, self.size):
            raise ValueError(f"images must be (B, C, {self.size}, {self.size}) for this bank; got "
                             f"{tuple(images.shape)}")
        if len(indices) != images.shape[0]:
            raise ValueError(f"{len(indices)} layout indices for {images.shape[0]} images")
        mask, source = self.layout(indices, images.device)
        if source is None:
            corrupted = images.masked_fill(mask.unsqueeze(1), self.fill_value)
        else:
            batch, channels = images.shape[:2]
            index = source.view(batch, 1, -1).expand(batch, channels, -1)
            corrupted = images.flatten(2).gather(2, index).view_as(images)
        return corrupted, mask.unsqueeze(1).to(images.dtype)

    def corrupt(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Corrupt every image with a layout of its own drawn from ``generator`` (see :meth:`apply`)."""
        return self.apply(images, self.draw(images.shape[0], generator))
