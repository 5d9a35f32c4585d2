"""Parts written once for several families: the four-stage backbone base, the yacs-builder
helpers and the 3x step schedule of the ConvNeXt and Swin configs."""
import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from detectron2.config import LazyConfig, get_cfg
from detectron2.layers import ShapeSpec

from d2backbones.convnext import add_convnext_config, build_convnext_backbone
from d2backbones.modeling.hierarchical import STAGE_NAMES, HierarchicalBackbone
from d2backbones.swin import add_swin_config, build_swin_backbone

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class ToyBackbone(HierarchicalBackbone):
    """A stem and four stages of one linear layer each (dropout shows train/eval mode)."""

    def __init__(self, out_features=STAGE_NAMES, freeze_at=0):
        super().__init__()
        num_stages = self.stages_to_build(out_features, freeze_at, stem_name="stem")
        self.stem = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
        self.stages = nn.ModuleList(nn.Sequential(nn.Linear(2, 2), nn.Dropout()) for _ in range(num_stages))
        self._add_output_norms(out_features, dims=(2, 2, 2, 2), stem_stride=4, norm_layer=nn.LayerNorm)
        self._freeze(freeze_at)

    def stem_and_stages(self):
        return self.stem, self.stages

    def forward(self, x):
        return self._forward_stages(self.stem(x))


@pytest.mark.parametrize("freeze_at", range(6))
def test_freeze_at_follows_detectron2_resnet(freeze_at):
    """0 trains everything, 1 freezes the stem, k >= 2 the stem and res2..res{k}."""
    net = ToyBackbone(freeze_at=freeze_at).train()
    units = [net.stem, *net.stages]
    for index, unit in enumerate(units):
        frozen = index < freeze_at
        assert all(p.requires_grad != frozen for p in unit.parameters()), (freeze_at, index)
        assert unit.training != frozen, (freeze_at, index)
    assert all(p.requires_grad for i in range(4) for p in getattr(net, f"norm{i}").parameters())


def test_outputs_strides_and_padding():
    net = ToyBackbone(out_features=("res3", "res2"))
    assert len(net.stages) == 2 and not hasattr(net, "norm2")
    shapes = net.output_shape()
    assert list(shapes) == ["res3", "res2"]
    assert (shapes["res2"].stride, shapes["res3"].stride) == (4, 8)
    assert net.size_divisibility == 8 and net.padding_constraints == {"size_divisibility": 8}
    outputs = net.eval()(torch.ones(3, 2))
    assert list(outputs) == ["res2", "res3"]
    assert outputs["res3"].shape == (3, 2)


def test_bad_stage_arguments_are_named():
    with pytest.raises(ValueError, match=r"non-empty subset .* got \['res6'\]"):
        ToyBackbone(out_features=("res6",))
    with pytest.raises(ValueError, match=r"non-empty subset"):
        ToyBackbone(out_features=())
    with pytest.raises(ValueError, match=r"freeze_at must be in 0\.\.5 \(stem, res2\.\.res5\); got 6"):
        ToyBackbone(freeze_at=6)


@pytest.mark.parametrize(
    "add_config, builder, key",
    [
        (add_convnext_config, build_convnext_backbone, "CONVNEXT"),
        (add_swin_config, build_swin_backbone, "SWIN"),
    ],
)
def test_unknown_yacs_size_names_the_key_and_the_choices(add_config, builder, key):
    cfg = get_cfg()
    add_config(cfg)
    cfg.MODEL[key].SIZE = "huge"
    expected = rf"MODEL\.{key}\.SIZE must be one of \['base', 'large', 'small', 'tiny'\]; got 'huge'"
    with pytest.raises(ValueError, match=expected):
        builder(cfg, ShapeSpec(channels=3))


# The official 3x recipe: 36 epochs at batch 16, lr x0.1 at epochs 27 and 33, 500 warmup
# iterations from 0.001x. An epoch is detectron2's (184375 / 100 iterations at batch 64),
# counted at batch 64 and then times 4, so the numbers are 4x those of a batch-64 schedule.
THREE_X_CONFIGS = [
    "ConvNeXt/COCO/mask_rcnn_convnext_t_3x.py",
    "ConvNeXt/COCO/mask_rcnn_convnext_s_3x.py",
    "ConvNeXt/COCO/mask_rcnn_convnext_b_3x.py",
    "ConvNeXt/COCO/cascade_mask_rcnn_convnext_t_3x.py",
    "ConvNeXt/COCO/cascade_mask_rcnn_convnext_s_3x.py",
    "ConvNeXt/COCO/cascade_mask_rcnn_convnext_b_3x.py",
    "Swin/COCO/mask_rcnn_swin_t_3x.py",
    "Swin/COCO/mask_rcnn_swin_s_3x.py",
    "Swin/COCO/cascade_mask_rcnn_swin_t_3x.py",
    "Swin/COCO/cascade_mask_rcnn_swin_s_3x.py",
    "Swin/COCO/cascade_mask_rcnn_swin_b_3x.py",
]


@pytest.mark.parametrize("name", THREE_X_CONFIGS)
def test_3x_schedule(name):
    cfg = LazyConfig.load(str(CONFIGS / name))
    assert cfg.train.max_iter == 4 * 66375 == 265500
    assert list(cfg.lr_multiplier.scheduler.milestones) == [4 * 49781, 4 * 60843]
    assert cfg.lr_multiplier.scheduler.num_updates == cfg.train.max_iter
    assert cfg.lr_multiplier.warmup_length * cfg.train.max_iter == pytest.approx(500)
    assert cfg.lr_multiplier.warmup_factor == 0.001


def test_step_schedule_refuses_bad_milestones():
    spec = importlib.util.spec_from_file_location("schedule", CONFIGS / "common/schedule.py")
    schedule = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(schedule)
    for drop_epochs in [(33, 27), (27,), (27, 40)]:
        with pytest.raises(ValueError, match="two increasing milestones between 0 and max_iter=265500"):
            schedule.coco_step_schedule(epochs=36, drop_epochs=drop_epochs, batch_size=16)
