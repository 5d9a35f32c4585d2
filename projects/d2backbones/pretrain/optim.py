"""SparK's optimiser: LAMB with a weight decay that follows a cosine, and its two groups.

SparK (``pretrain/main.py``, ``utils/lr_control.py``) trains with LAMB (timm's,
betas (0.9, 0.999) for ConvNeXt, global gradient norm clipped at 5) and anneals the
weight decay each step from ``wd`` to ``wde`` by a half cosine,
``wde + (wd - wde) * (1 + cos(pi * it / (max_it - 1))) / 2``, on every parameter
but biases, norms, layer scales and mask tokens. The trainer schedules only the
learning rate, so :class:`CosineWeightDecayLamb` sets its own decay before each
step; its step count lives in its param groups, so the optimizer's state (which
``--resume`` restores) carries the schedule exactly.
"""
import math

from timm.optim import Lamb

__all__ = ["CosineWeightDecayLamb", "decay_param_groups"]

STEP_KEY = "weight_decay_step"
SCALE_KEY = "weight_decay_scale"


def decay_param_groups(model, no_decay_keys=()):
    """SparK's ``get_param_groups``: a decaying group, and one with ``weight_decay=0`` of the
    1-D parameters (biases, norms, layer scales) and those whose name contains one of
    ``no_decay_keys`` (e.g. "mask_tokens"). Frozen parameters are left out."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or any(key in name for key in no_decay_keys):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


class CosineWeightDecayLamb(Lamb):
    """timm's LAMB, its weight decay annealed from ``weight_decay`` to ``weight_decay_end``.

    A group's decay is its share of ``weight_decay`` at construction (1 for a group
    that takes the default, 0 for a no-decay group) times the schedule's value.
    """

    def __init__(self, params, *, weight_decay=0.04, weight_decay_end=0.2, max_iter=1, **kwargs):
        """
        Args:
            params: parameters or groups, as any optimizer.
            weight_decay, weight_decay_end (float): the decay at the first and the last step.
            max_iter (int): steps of the schedule; later steps keep ``weight_decay_end``.
            kwargs: timm ``Lamb``'s (lr, betas, eps, max_grad_norm, ...).
        """
        if weight_decay <= 0:
            raise ValueError(f"weight_decay must be positive for a schedule, got {weight_decay}; use timm's Lamb")
        super().__init__(params, weight_decay=weight_decay, **kwargs)
        self.weight_decay_start, self.weight_decay_end, self.max_iter = weight_decay, weight_decay_end, max_iter
        for group in self.param_groups:
            group.setdefault(SCALE_KEY, group["weight_decay"] / weight_decay)
            group.setdefault(STEP_KEY, 0)

    def weight_decay_at(self, step):
        """The scheduled decay at ``step`` (0-based): SparK's half cosine, start to end."""
        progress = min(step / max(self.max_iter - 1, 1), 1.0)
        end, start = self.weight_decay_end, self.weight_decay_start
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def step(self, closure=None):
        for group in self.param_groups:
            group["weight_decay"] = group[SCALE_KEY] * self.weight_decay_at(group[STEP_KEY])
            group[STEP_KEY] += 1
        return super().step(closure)
