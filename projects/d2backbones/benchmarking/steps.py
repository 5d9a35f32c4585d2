"""One seeded training step of a detector, as the side-by-side benchmarks take it."""
import random

import numpy as np
import torch


def reseed_everything(seed):
    """The same torch, numpy and Python random state before each side's call, so that
    both sides of a comparison sample the same proposals (and tokens, drop paths)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def seeded_train_step(model, batch, seed):
    """Forward + backward of the summed losses after :func:`reseed_everything`
    (no optimizer step); returns the losses as floats."""
    from detectron2.utils.events import EventStorage

    model.train()
    model.zero_grad(set_to_none=True)
    reseed_everything(seed)
    with EventStorage():
        losses = model(batch)
        sum(losses.values()).backward()
    return {name: loss.item() for name, loss in losses.items()}
