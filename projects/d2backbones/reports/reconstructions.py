"""The picture of a masked-image-modeling run: per image, the input, the masked
input, the prediction and the target, side by side."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ..pretrain.targets import patchify, unpatchify  # noqa: E402

__all__ = ["plot_reconstructions", "reconstruction_panels"]

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
    x = (images.float().to(model.device) - model.pixel_mean) / model.pixel_std
    out = model.forward_images(x, noise=noise)
    p, channels, grid = model.patch_size, x.shape[1], (x.shape[2] // model.patch_size, x.shape[3] // model.patch_size)
    patches = patchify(x, p)
    pred, target = out["pred"], out["target"]
    if getattr(model.target, "normalize", False):
        mean, var = patches.mean(-1, keepdim=True), patches.var(-1, keepdim=True)
        scale = (var + model.target.eps) ** 0.5
        pred = pred * scale + mean
        # Normalised patches have unit variance: shown around the image's mean, at the image's contrast.
        target = target * patches.std() + patches.mean()
    masked = _patch_map(out["mask"], p, channels).bool()
    grey = torch.full_like(patches, float("nan"))

    def to_image(patch_values):
        image = unpatchify(patch_values, p, grid, channels) * model.pixel_std + model.pixel_mean
        image = (image / 255.0).clamp(0, 1)
        return torch.nan_to_num(image, nan=MASK_GREY).permute(0, 2, 3, 1).cpu()

    return {
        "input": to_image(patches),
        "masked input": to_image(torch.where(masked, grey, patches)),
        "prediction": to_image(torch.where(masked, pred, patches)),
        "target": to_image(torch.where(masked, target, grey)),
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
