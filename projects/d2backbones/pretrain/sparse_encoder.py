"""What SparK (:class:`~.spark.SparK`) asks of its encoder: a CNN run as a sparse one.

SparK pretrains a hierarchical CNN by masking whole cells of its coarsest grid and
running the network as if the masked cells were empty (submanifold sparse
convolution), emulated with dense layers: every layer that mixes positions sees
zeros at masked positions, and every masked position of every output is zero. The
encoder is a family's network (ConvNeXt owns :class:`d2backbones.convnext.SparseConvNeXt`);
this package states the contract, so that it imports no family.

Contract of an encoder (checked by :func:`check_sparse_encoder`):

- ``out_channels`` (list[int]): channels of the feature maps, finest first;
- ``out_strides`` (list[int]): their strides, ``4, 8, ...``, each twice the one before;
- ``downsample_ratio`` (int): ``out_strides[-1]``, the side of a mask cell in pixels;
- ``forward(images, visible) -> list[Tensor]``: ``images`` (B, C, H, W) with H, W
  multiples of ``downsample_ratio``; ``visible`` (B, H / r, W / r) bool, True at
  the cells the encoder may see. Output ``i`` is (B, out_channels[i], H / s_i, W / s_i)
  with s_i = out_strides[i]; it must be zero at masked positions (``visible``
  upsampled to that map) and, at visible positions, must not depend on the pixels of
  masked cells.

The parameter names are the family's detection backbone's, so the pretrained
encoder loads into its detectors through the family's ``spark`` converter.
"""
__all__ = ["check_sparse_encoder"]


def check_sparse_encoder(encoder):
    """Raise a one-line ValueError unless ``encoder`` declares the contract's attributes consistently."""
    missing = [name for name in ("out_channels", "out_strides", "downsample_ratio") if not hasattr(encoder, name)]
    if missing:
        raise ValueError(f"{type(encoder).__name__} is not a SparK encoder: it lacks {', '.join(missing)}; "
                         "see d2backbones.pretrain.sparse_encoder for the contract")
    strides, channels = list(encoder.out_strides), list(encoder.out_channels)
    doubling = all(b == 2 * a for a, b in zip(strides, strides[1:]))
    if not strides or len(strides) != len(channels) or not doubling or strides[-1] != encoder.downsample_ratio:
        raise ValueError(f"{type(encoder).__name__} declares strides {strides}, channels {channels} and downsample "
                         f"ratio {encoder.downsample_ratio}: SparK needs one channel count per stride, each stride "
                         "twice the one before, the last equal to the downsample ratio")
