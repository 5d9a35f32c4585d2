"""The model inside a data-parallel wrapper.

``launch`` with more than one process wraps the detector in ``DistributedDataParallel``;
code that needs the detector's own methods or state-dict keys (the EMA, the checkpoint
loader, TTA, batch pasting) goes through :func:`unwrap_parallel`, the one test of it.
"""
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

__all__ = ["unwrap_parallel"]


def unwrap_parallel(model: nn.Module) -> nn.Module:
    """``model.module`` for a ``DistributedDataParallel`` or ``DataParallel`` wrapper,
    else ``model`` itself (a module that merely has a ``module`` attribute is not unwrapped)."""
    return model.module if isinstance(model, (DistributedDataParallel, DataParallel)) else model
