"""MIMDet's lr rule: no layer-wise decay, three groups (pretrained encoder, stem, new parts)."""

__all__ = ["mimdet_lr_factor"]


def mimdet_lr_factor(name, encoder_lr_multiplier):
    """lr factor of a detector parameter in the MIMDet recipe (no layer-wise decay).

    The pretrained encoder blocks train at ``base_lr / m``, the random ConvStem at
    ``base_lr``, and everything new after the encoder (decoder, FPN, heads) at
    ``base_lr * m``; m is 2.0 for ViT-B and 3.5 for ViT-L. Plug into
    ``get_default_optimizer_params(lr_factor_func=partial(mimdet_lr_factor, encoder_lr_multiplier=m))``.
    """
    if ".bottom_up.encoder.patch_embed." in name:
        return 1.0
    if ".bottom_up.encoder." in name:
        return 1.0 / encoder_lr_multiplier
    return encoder_lr_multiplier
