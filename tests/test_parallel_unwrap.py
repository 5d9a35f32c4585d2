"""``unwrap_parallel``: the one test of "is this a data-parallel wrapper"."""
import torch
from detectron2.config import LazyConfig, instantiate
from torch import nn
from torch.nn.parallel import DataParallel

from d2backbones.inference.mask_paste import BatchPastingDetector, with_batch_pasting
from d2backbones.utils import unwrap_parallel


class HasModuleAttribute(nn.Module):
    """A model whose own submodule is called ``module``: not a wrapper."""

    def __init__(self):
        super().__init__()
        self.module = nn.Linear(2, 2)


def test_data_parallel_is_unwrapped_and_plain_models_are_not():
    model = nn.Linear(2, 2)
    assert unwrap_parallel(DataParallel(model)) is model
    assert unwrap_parallel(model) is model
    named_module = HasModuleAttribute()
    assert unwrap_parallel(named_module) is named_module


def test_batch_pasting_sees_through_the_wrapper():
    torch.manual_seed(0)
    cfg = LazyConfig.load("configs/demo/vitdet_tiny.py")
    detector = instantiate(cfg.model)
    wrapped = with_batch_pasting(DataParallel(detector))
    assert isinstance(wrapped, BatchPastingDetector)
    assert with_batch_pasting(nn.Linear(2, 2)).__class__ is nn.Linear
