"""Checks that a timed training step computed what it should, so that a fast wrong
step is never reported as a speed-up."""
import math

import torch

__all__ = ["check_step", "max_rel_err"]


def check_step(label, losses, counter, ratio):
    """Raise unless the losses are finite and, where ``ratio`` is given, the encoder kept
    int(L * ratio) of its L tokens.

    Args:
        label (str): names the step in the error.
        losses (dict[str, float]): the step's loss terms.
        counter: has ``kept`` and ``total``, the encoder's token counts of the step.
        ratio (float | None): the token sample ratio; None checks the losses only.
    """
    if not all(math.isfinite(value) for value in losses.values()):
        raise RuntimeError(f"{label}: non-finite losses {losses}")
    if ratio is not None and counter.kept != int(counter.total * ratio):
        raise RuntimeError(f"{label}: the encoder kept {counter.kept} of {counter.total} tokens, "
                           f"expected int(L * ratio) = {int(counter.total * ratio)}")


def max_rel_err(actual, expected):
    """``max |actual - expected| / max |expected|`` of two tensors, computed in float32 or
    wider (half-precision outputs are widened, float64 ones kept); the absolute
    difference where ``expected`` is all zero."""
    dtype = torch.promote_types(torch.promote_types(actual.dtype, expected.dtype), torch.float32)
    difference = (actual.to(dtype) - expected.to(dtype)).abs().max()
    scale = expected.to(dtype).abs().max()
    return (difference / scale).item() if scale > 0 else difference.item()
