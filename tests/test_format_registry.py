"""The checkpoint-format registry that families fill from their own convert.py."""
import pytest
import torch
from detectron2.modeling.backbone.vit import ViT as Detectron2ViT

import d2backbones
from d2backbones.checkpoint import formats, get_format, model_family, registered_families, registered_formats
from d2backbones.checkpoint.shared_formats import is_mae_checkpoint, is_mae_full_checkpoint
from d2backbones.vitdet import ViT

# What `tools/convert_checkpoint.py --list` listed before the families registered
# their own formats: (name, converter families), in detection order.
EXPECTED_FORMATS = [
    ("vitdet_zoo", ["vitdet"]),
    ("mimdet", ["mimdet"]),
    ("detectron2_swin", ["swin"]),
    # MAE pretraining (d2backbones.pretrain) reads MAE files to continue pretraining.
    ("mae_full", ["vitdet", "mimdet", "mae_pretraining"]),
    # SparK pretraining (d2backbones.pretrain.SparK): its ConvNeXt encoder, or all of it to continue.
    ("spark", ["convnext", "spark_pretraining"]),
    # MaskFeat / SimMIM with a hierarchical encoder; with a ViT they are MAE encoders.
    ("mask_token_mim", ["mask_token_pretraining", "swin"]),
    ("mae", ["vitdet", "mimdet", "mae_pretraining", "mask_token_pretraining"]),
    ("timm_vit", ["vitdet"]),
    ("official_convnext", ["convnext"]),
    ("timm_convnext", ["convnext"]),
    ("official_swin", ["swin"]),
    ("timm_swin", ["swin"]),
    ("d2", ["*"]),
]


@pytest.fixture
def scratch_registry(monkeypatch):
    """The registry as filled by ``import d2backbones``, in a copy the test may change."""
    monkeypatch.setattr(formats, "_FORMATS", {k: formats.CheckpointFormat(v.name, v.description, v.detect, v.priority,
                                                                          dict(v.converters))
                                              for k, v in formats._FORMATS.items()})
    monkeypatch.setattr(formats, "_FAMILY_MODULES", dict(formats._FAMILY_MODULES))


def test_import_fills_the_registry_in_detection_order():
    assert d2backbones.checkpoint is not None
    assert [(f.name, list(f.converters)) for f in registered_formats()] == EXPECTED_FORMATS
    # Swin's converters import d2backbones.pretrain, whose families register before Swin's.
    assert registered_families() == ["vitdet", "mimdet", "convnext", "mae_pretraining", "mask_token_pretraining",
                                     "spark_pretraining", "swin"]


def test_shared_mae_formats_have_one_detect_function_each():
    assert get_format("mae").detect is is_mae_checkpoint
    assert get_format("mae_full").detect is is_mae_full_checkpoint


def test_a_second_format_or_converter_of_the_same_name_is_refused(scratch_registry):
    with pytest.raises(ValueError, match="registered twice"):
        formats.register_format("mae", "again", detect=is_mae_checkpoint, priority=formats.ENCODER)
    with pytest.raises(ValueError, match="already has a vitdet converter"):
        formats.register_converter("mae", "vitdet", lambda state_dict, model=None: state_dict)
    with pytest.raises(ValueError, match="unknown checkpoint format 'nope'"):
        formats.register_converter("nope", "vitdet", lambda state_dict, model=None: state_dict)
    with pytest.raises(ValueError, match="registered twice"):
        formats.register_family("swin", ("somewhere",))


def test_a_new_format_is_found_by_detection_in_its_band(scratch_registry):
    formats.register_format("toy", "toy detector", detect=lambda sd: "toy.weight" in sd, priority=formats.DETECTOR)
    formats.register_converter("toy", "vitdet", lambda sd, model=None: {"backbone." + k: v for k, v in sd.items()})
    names = [f.name for f in registered_formats()]
    assert names.index("toy") < names.index("mae_full")
    detected = formats.detect_format({"toy.weight": torch.zeros(1), "backbone.x": torch.zeros(1)})
    assert detected.name == "toy"
    assert formats.convert_state_dict({"toy.weight": torch.zeros(1)}, detected, family="vitdet") == {
        "backbone.toy.weight": torch.zeros(1)}


def test_model_family_comes_from_the_declared_module_paths():
    ours = ViT(img_size=64, patch_size=16, embed_dim=32, depth=1, num_heads=2)
    reference = Detectron2ViT(img_size=64, patch_size=16, embed_dim=32, depth=1, num_heads=2)
    assert model_family(ours) == "vitdet"
    assert model_family(reference) == "vitdet"
    assert model_family(torch.nn.Linear(2, 2)) is None


def test_wrapped_mae_keys_are_mae_for_every_family():
    """``module.``-wrapped MAE releases were detected only by MIMDet's detect function,
    which the registry never used; the one shared function now accepts them for both."""
    encoder = {"patch_embed.proj.weight": torch.zeros(8, 3, 16, 16), "pos_embed": torch.zeros(1, 5, 8),
               "blocks.0.attn.qkv.weight": torch.zeros(24, 8)}
    wrapped = {"module." + k: v for k, v in encoder.items()}
    assert formats.detect_format(wrapped).name == "mae"
    converted = formats.convert_state_dict(wrapped, get_format("mae"), family="vitdet")
    assert sorted(converted) == sorted("backbone.net." + k for k in encoder)
