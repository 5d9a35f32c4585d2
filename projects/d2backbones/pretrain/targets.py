"""What a masked-image-modeling model predicts per patch: pluggable targets.

A target maps the normalised input images to one vector per patch, in the token
order of the encoder's grid (row-major), so any method compares its prediction
with any target at the same masked positions:

- ``"pixels"``: the patch's pixels, MAE's ``patchify`` layout (row, column, channel);
- ``"norm_pixels"``: the same, each patch normalised by its own mean and variance
  (MAE's ``norm_pix_loss``), which sharpens what the encoder learns.

A new target (HOG for MaskFeat) is a module with ``patch_size``, ``dim`` and
``forward(images) -> (B, L, dim)`` and no persistent state (a method's state dict
keeps its published names), registered with :func:`register_target`.
"""
import torch.nn as nn

__all__ = ["PixelTarget", "build_target", "patchify", "register_target", "registered_targets", "unpatchify"]


def patchify(images, patch_size):
    """(B, C, H, W) -> (B, H/p * W/p, p * p * C), each patch as (row, column, channel)."""
    batch, channels, height, width = images.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"image size {height}x{width} is not a multiple of the patch size {patch_size}")
    rows, cols = height // patch_size, width // patch_size
    x = images.reshape(batch, channels, rows, patch_size, cols, patch_size)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(batch, rows * cols, patch_size * patch_size * channels)


def unpatchify(patches, patch_size, grid, channels=3):
    """(B, L, p * p * C) -> (B, C, rows * p, cols * p); the inverse of :func:`patchify` for ``grid`` = (rows, cols)."""
    rows, cols = grid
    x = patches.reshape(patches.shape[0], rows, cols, patch_size, patch_size, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(patches.shape[0], channels, rows * patch_size, cols * patch_size)


class PixelTarget(nn.Module):
    """The pixels of each patch, optionally normalised per patch.

    Shapes: images (B, C, H, W) -> (B, H/p * W/p, p * p * C).
    """

    def __init__(self, patch_size, in_chans=3, normalize=False, eps=1e-6):
        """
        Args:
            normalize (bool): subtract each patch's mean and divide by
                ``sqrt(var + eps)`` (unbiased variance, as MAE's ``norm_pix_loss``).
        """
        super().__init__()
        self.patch_size, self.in_chans = patch_size, in_chans
        self.dim = patch_size * patch_size * in_chans
        self.normalize, self.eps = normalize, eps

    def forward(self, images):
        target = patchify(images, self.patch_size)
        if self.normalize:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + self.eps) ** 0.5
        return target

    def extra_repr(self):
        return f"patch_size={self.patch_size}, normalize={self.normalize}"


_TARGETS = {}


def register_target(name, factory):
    """Make ``build_target(name, patch_size, ...)`` call ``factory(patch_size, ...)``."""
    if name in _TARGETS:
        raise ValueError(f"pretraining target {name!r} is registered twice; pick another name")
    _TARGETS[name] = factory


def registered_targets():
    """Names :func:`build_target` accepts."""
    return sorted(_TARGETS)


def build_target(name, patch_size, **kwargs):
    """The target module called ``name`` for ``patch_size``-pixel patches."""
    if name not in _TARGETS:
        raise ValueError(f"unknown pretraining target {name!r}; pick one of {', '.join(registered_targets())}")
    return _TARGETS[name](patch_size, **kwargs)


register_target("pixels", lambda patch_size, **kwargs: PixelTarget(patch_size, normalize=False, **kwargs))
register_target("norm_pixels", lambda patch_size, **kwargs: PixelTarget(patch_size, normalize=True, **kwargs))
