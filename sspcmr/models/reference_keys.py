"""Key names of the reference implementation: converting a U-Net state dict to and from them.

sspcmr keeps the heads under ``heads.{i}`` (highest resolution first); the reference keeps them under
``decoder.output_convs.{j}`` in the opposite order. Encoder and decoder keys are the same in both, so an
exported backbone loads into the reference code and back (docs/methods/README.md, "Export").
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from sspcmr.models.unet import HEAD_PREFIX, REFERENCE_HEAD_PREFIX, UNet


def _rename_heads(
    state_dict: Mapping[str, Tensor], source: str, target: str, num_outputs: int | None
) -> dict[str, Tensor]:
    """Move head entries from prefix ``source`` to ``target``, reversing their index order.

    Entries without ``source`` are kept in order; the renamed heads follow them, sorted by their new index.
    """
    pattern = re.compile(rf"^{re.escape(source)}(\d+)\.(.+)$")
    heads, renamed = {}, {}
    for key, value in state_dict.items():
        match = pattern.match(key)
        if match:
            heads[key] = (int(match.group(1)), match.group(2), value)
        else:
            renamed[key] = value
    indices = {index for index, _, _ in heads.values()}
    if num_outputs is None:
        # Without the model's head count, only a complete set of heads 0 … n - 1 tells n.
        if indices != set(range(len(indices))):
            raise ValueError(f"head indices {sorted(indices)} under {source!r} are not 0 … n - 1; pass num_outputs")
        num_outputs = len(indices)
    elif max(indices, default=-1) >= num_outputs:
        raise ValueError(f"head indices {sorted(indices)} under {source!r} do not fit num_outputs={num_outputs}")
    # Reference heads are ordered deepest first, ours highest resolution first: index k <-> n - 1 - k.
    # The sort is stable, so each head keeps its weight-then-bias order.
    for index, suffix, value in sorted(heads.values(), key=lambda item: num_outputs - 1 - item[0]):
        renamed[f"{target}{num_outputs - 1 - index}.{suffix}"] = value
    return renamed


def reference_state_dict(source: UNet | Mapping[str, Tensor], num_outputs: int | None = None) -> dict[str, Tensor]:
    """State dict with the reference ``UNet2d`` key names, loadable by the reference code.

    ``heads.{i}.*`` becomes ``decoder.output_convs.{n - 1 - i}.*`` for n heads (the reference orders its heads
    deepest first); every other key is already the reference's and is kept. The tensors are not copied.

    Args:
        source: A :class:`UNet`, or a state dict in this package's naming (possibly partial, e.g. encoder only).
        num_outputs: Number of heads n of the model the state dict comes from; by default the model's, or the
            number of distinct head indices in the state dict.

    Returns:
        The renamed state dict (206 keys for the reference config).

    Raises:
        ValueError: If a head index is >= ``num_outputs`` or, without ``num_outputs``, the indices present are
            not 0 … n - 1.
    """
    if isinstance(source, UNet):
        num_outputs = source.num_outputs if num_outputs is None else num_outputs
        source = source.state_dict()
    return _rename_heads(source, HEAD_PREFIX, REFERENCE_HEAD_PREFIX, num_outputs)


def from_reference_state_dict(state_dict: Mapping[str, Tensor], num_outputs: int | None = None) -> dict[str, Tensor]:
    """Translate a reference ``UNet2d`` (or reference encoder) state dict to this package's key names.

    ``decoder.output_convs.{k}.*`` becomes ``heads.{n - 1 - k}.*``; all other keys (``encoder.*``,
    ``decoder.upconvs.*``, ``decoder.dec_blocks.*``, and e.g. a projection MLP's) are kept. The tensors are not
    copied, so ``UNet().load_state_dict(from_reference_state_dict(sd))`` loads identical values.

    Args:
        state_dict: Reference-named state dict, e.g. ``torch.load("last_model.pt")``.
        num_outputs: Number of heads n of the reference model; by default the number of distinct
            ``decoder.output_convs`` indices present.

    Returns:
        The renamed state dict.

    Raises:
        ValueError: If a head index is >= ``num_outputs`` or, without ``num_outputs``, the indices present are
            not 0 … n - 1.
    """
    return _rename_heads(state_dict, REFERENCE_HEAD_PREFIX, HEAD_PREFIX, num_outputs)
