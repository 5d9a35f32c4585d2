"""The picture of a masked-image-modeling run: per image, the input, the masked
input, the prediction and the target, side by side.

Pixel targets (MAE, SimMIM) are shown as images; HOG targets (MaskFeat) as oriented
glyphs (:mod:`.hog_glyphs`), at the masked patches."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ..pretrain.hog import HOGTarget  # noqa: E402
from ..pretrain.targets import patchify, unpatchify  # noqa: E402
from .hog_glyphs import hog_glyphs  # noqa: E402

__all__ = ["mask_token_panels", "plot_reconstructions", "reconstruction_panels"]

PANELS = ("input", "masked input", "prediction", "target")
# Masked patches are shown in this grey (0-1 scale).
MASK_GREY = 0.5


def _patch_map(mask, patch_size, channels):
    """(B, L) -> (B, L, p * p * C) of the same values, to select whole patches."""
    return mask[..., None].expand(-1, -1, patch_size * patch_size * channels)


@torch.no_grad()
def reconstruction_panels(model, images, noise=None):
    """Run ``model`` (an MAE-like pretrainer) on ``images`` and return the four panels.

    Args:
        model: with ``patch_size``, ``target`` (``normalize`` for norm-pixel targets),
            ``pixel_mean`` / ``pixel_std`` and ``forward_images(x, noise=)`` returning
            ``pred`` and ``mask``.
        images (Tensor): (B, 3, H, W) uint8, RGB.
        noise (Tensor or None): (B, L) masking noise, for a repeatable picture.

    Returns:
        dict: panel name -> (B, H, W, 3) float in [0, 1]. The prediction shows the input at
        visible patches and the predicted pixels at masked ones; a per-patch normalised
        prediction is put back in pixels with the true patch's mean and variance, as
        MAE's demo does. The target is what the loss compares with, at masked patches.
    """
    model.eval()
    x = _normalise(model, images)
    return _pixel_panels(model, x, model.forward_images(x, noise=noise))


@torch.no_grad()
def mask_token_panels(model, images, mask):
    """The four panels of a :class:`~d2backbones.pretrain.MaskTokenPretrainer` (MaskFeat, SimMIM).

    Args:
        model: the pretrainer.
        images (Tensor): (B, 3, H, W) uint8, RGB.
        mask (Tensor): (B, H / unit, W / unit) mask cells (``model.sample_mask``).

    Returns:
        dict: panel name -> (B, h, w, 3) float in [0, 1]. Pixel targets: as
        :func:`reconstruction_panels`. HOG targets: the input, the input with masked
        patches grey, then the predicted and the target histograms of the masked
        patches as glyphs (visible patches left black).
    """
    model.eval()
    x = _normalise(model, images)
    out = model.forward_images(x, mask=mask)
    if not isinstance(model.target, HOGTarget):
        return _pixel_panels(model, x, out)
    grid = (x.shape[2] // model.patch_size, x.shape[3] // model.patch_size)
    keep = out["mask"][..., None]
    return {
        **_input_panels(model, x, out["mask"]),
        "prediction": hog_glyphs(model.target.to_cells(out["pred"] * keep, grid)),
        "target": hog_glyphs(model.target.to_cells(out["target"] * keep, grid)),
    }


def _normalise(model, images):
    return (images.float().to(model.device) - model.pixel_mean) / model.pixel_std


class _Pictures:
    """Normalised (B, L, p * p * C) patches of ``x`` -> (B, H, W, 3) pictures in [0, 1], NaN shown grey."""

    def __init__(self, model, x):
        self.model, self.p, self.channels = model, model.patch_size, x.shape[1]
        self.grid = (x.shape[2] // self.p, x.shape[3] // self.p)
        self.patches = patchify(x, self.p)

    def __call__(self, patch_values):
        image = unpatchify(patch_values, self.p, self.grid, self.channels) * self.model.pixel_std + self.model.pixel_mean
        image = (image / 255.0).clamp(0, 1)
        return torch.nan_to_num(image, nan=MASK_GREY).permute(0, 2, 3, 1).cpu()

    def masked(self, mask):
        """(B, L) mask -> (B, L, p * p * C) bool, True on the values of masked patches."""
        return _patch_map(mask, self.p, self.channels).bool()


def _input_panels(model, x, mask):
    pictures = _Pictures(model, x)
    grey = torch.full_like(pictures.patches, float("nan"))
    return {"input": pictures(pictures.patches),
            "masked input": pictures(torch.where(pictures.masked(mask), grey, pictures.patches))}


def _pixel_panels(model, x, out):
    """The four panels of a pixel target (see :func:`reconstruction_panels`)."""
    pictures = _Pictures(model, x)
    patches = pictures.patches
    pred, target = out["pred"], out["target"]
    if getattr(model.target, "normalize", False):
        mean, var = patches.mean(-1, keepdim=True), patches.var(-1, keepdim=True)
        scale = (var + model.target.eps) ** 0.5
        pred = pred * scale + mean
        # Normalised patches have unit variance: shown around the image's mean, at the image's contrast.
        target = target * patches.std() + patches.mean()
    masked = pictures.masked(out["mask"])
    return {
        **_input_panels(model, x, out["mask"]),
        "prediction": pictures(torch.where(masked, pred, patches)),
        "target": pictures(torch.where(masked, target, torch.full_like(patches, float("nan")))),
    }


def plot_reconstructions(panels, png_path, title="reconstructions"):
    """One row per image, one column per panel of :func:`reconstruction_panels`, into ``png_path``."""
    rows = panels[PANELS[0]].shape[0]
    figure, axes = plt.subplots(rows, len(PANELS), figsize=(2.2 * len(PANELS), 2.2 * rows), squeeze=False)
    for row in range(rows):
        for column, name in enumerate(PANELS):
            axis = axes[row][column]
            axis.imshow(panels[name][row].numpy())
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(name)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
