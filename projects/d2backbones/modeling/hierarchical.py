"""The detectron2 side of the four-stage backbones (ConvNeXt, Swin): outputs ``res2``..``res5``,
each through its own norm, and stage freezing as detectron2's ResNet does it."""
from detectron2.modeling import Backbone

__all__ = ["BACKBONE_PREFIX", "STAGE_NAMES", "HierarchicalBackbone"]

STAGE_NAMES = ("res2", "res3", "res4", "res5")
# Where a detector keeps these backbones' parameters: detectron2's FPN holds them as ``bottom_up``.
BACKBONE_PREFIX = "backbone.bottom_up."


class HierarchicalBackbone(Backbone):
    """A stem and four stages, stage ``i`` giving ``STAGE_NAMES[i]`` at stride
    ``stem_stride * 2**i`` through its output norm ``norm{i}``.

    A subclass builds its stem and stages, names them in :meth:`stem_and_stages`,
    then calls :meth:`_add_output_norms` and :meth:`_freeze`; its forward runs the stem
    and hands the result to :meth:`_forward_stages`. detectron2's ``Backbone`` gives
    ``output_shape`` from the ``_out_feature_*`` attributes set here.
    """

    @staticmethod
    def stages_to_build(out_features, freeze_at, stem_name):
        """Check ``out_features`` and ``freeze_at``; how many stages the last output needs.

        Args:
            out_features (Sequence[str]): non-empty, of ``STAGE_NAMES``.
            freeze_at (int): 0..5, as detectron2's ResNet.
            stem_name (str): what the subclass calls its stem, named in the error.
        """
        unknown = [name for name in out_features if name not in STAGE_NAMES]
        if unknown or not out_features:
            raise ValueError(f"out_features must be a non-empty subset of {STAGE_NAMES}; got {list(out_features)}")
        if not 0 <= freeze_at <= 5:
            raise ValueError(f"freeze_at must be in 0..5 ({stem_name}, res2..res5); got {freeze_at}")
        return max(STAGE_NAMES.index(name) for name in out_features) + 1

    def stem_and_stages(self):
        """(stem module, sequence of the built stage modules), in the order they run."""
        raise NotImplementedError(f"{type(self).__name__} must name its stem and stages")

    def _add_output_norms(self, out_features, dims, stem_stride, norm_layer):
        """Register ``norm{i}`` for each output stage and the ``_out_feature_*`` attributes.

        Args:
            out_features (Sequence[str]): the outputs, in the order ``output_shape`` lists them.
            dims (Sequence[int]): channels of the four stages.
            stem_stride (int): stride of the stem, i.e. of ``res2``.
            norm_layer (Callable[[int], nn.Module]): the norm of a stage of that many channels.
        """
        self._out_features = list(out_features)
        for i, name in enumerate(STAGE_NAMES):
            if name in out_features:
                self.add_module(f"norm{i}", norm_layer(dims[i]))
        self._out_feature_channels = {name: dims[STAGE_NAMES.index(name)] for name in out_features}
        self._out_feature_strides = {name: stem_stride * 2 ** STAGE_NAMES.index(name) for name in out_features}

    def _freeze(self, freeze_at):
        """Stop the gradients of the frozen modules and put them in eval mode.

        ``freeze_at``: 0 trains everything, 1 freezes the stem, k >= 2 the stem and the
        stages up to ``res{k}``."""
        self.freeze_at = freeze_at
        for module in self._frozen_modules():
            for param in module.parameters():
                param.requires_grad = False
        self.train()

    def _frozen_modules(self):
        stem, stages = self.stem_and_stages()
        return [stem, *stages][: self.freeze_at]

    def train(self, mode=True):
        """Frozen stages stay in eval mode, so their drop path is off."""
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    @property
    def size_divisibility(self):
        return max(self._out_feature_strides.values())

    @property
    def padding_constraints(self):
        """Batching to the largest stride keeps every stage's map an exact halving of the one before."""
        return {"size_divisibility": self.size_divisibility}

    def _output_of_stage(self, index, x):
        """What ``res{index + 2}`` returns for the stage's output ``x``."""
        return getattr(self, f"norm{index}")(x)

    def _forward_stages(self, x):
        """
        Args:
            x (Tensor): the stem's output.

        Returns:
            dict[str, Tensor]: each output stage's :meth:`_output_of_stage`, by name.
        """
        _, stages = self.stem_and_stages()
        outputs = {}
        for index, stage in enumerate(stages):
            x = stage(x)
            if STAGE_NAMES[index] in self._out_features:
                outputs[STAGE_NAMES[index]] = self._output_of_stage(index, x)
        return outputs
