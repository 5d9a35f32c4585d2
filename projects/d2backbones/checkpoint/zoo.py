"""The model zoo: ``zoo://<family>/<dataset>/<name>`` names for public checkpoints.

Two kinds of entries:

- ``detector``: a trained detector; ``tools/train_net.py --eval-only`` with the
  entry's config evaluates it, and ``box_ap`` / ``mask_ap`` are what its authors
  published for that file.
- ``pretrained``: an ImageNet (or MAE) backbone that a config starts training
  from; ``box_ap`` / ``mask_ap`` are the published results of that recipe after
  training, not of this file.

Only facts read from the official READMEs are recorded. ``None`` means unknown:
no entry has a published sha256, so downloads are checked by ``size`` only where
known, and otherwise not at all (the log says so).
"""
from dataclasses import dataclass
from typing import Optional

__all__ = ["ZooEntry", "ZOO", "ZOO_SCHEME", "get_zoo_entry", "zoo_entry_for", "zoo_names"]

ZOO_SCHEME = "zoo://"
D2_HOST = "https://dl.fbaipublicfiles.com/detectron2/"


@dataclass(frozen=True)
class ZooEntry:
    """One public checkpoint.

    Attributes:
        name: ``<family>/<dataset>/<model>``, used as ``zoo://<name>``.
        url: official download address.
        kind: "detector" or "pretrained" (see the module docstring).
        config: our config that the file belongs to (a detector's, or the recipe that
            starts from a pretrained file).
        box_ap, mask_ap: published AP (None where unpublished or unknown).
        params_m: published parameter count in millions (None where unknown).
        sha256, size: expected file hash / byte size (None: unknown, not checked).
        source: where the numbers come from.
    """

    name: str
    url: str
    kind: str
    config: str
    box_ap: Optional[float] = None
    mask_ap: Optional[float] = None
    params_m: Optional[float] = None
    sha256: Optional[str] = None
    size: Optional[int] = None
    source: str = ""

    @property
    def uri(self):
        return ZOO_SCHEME + self.name


_VITDET_README = "detectron2 projects/ViTDet/README.md"
_MIMDET_CONFIG = "configs/MIMDet/COCO/mimdet_vit_{}_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x.py"


def _vitdet(dataset, config, run, box_ap, mask_ap, family="vitdet"):
    """A file of detectron2's ViTDet model zoo: ``ViTDet/<dataset>/<model>/<run>/model_final_<id>.pkl``."""
    model = config.rsplit("_", 1)[0]
    family_dir = {"vitdet": "ViTDet", "swin": "Swin"}[family]
    return ZooEntry(
        name=f"{family}/{dataset.lower()}/{config}",
        url=f"{D2_HOST}ViTDet/{dataset}/{model}/{run}",
        kind="detector",
        config=f"configs/{family_dir}/{dataset}/{config}.py",
        box_ap=box_ap,
        mask_ap=mask_ap,
        source=_VITDET_README,
    )


_ENTRIES = [
    # ViTDet on COCO: Mask R-CNN and Cascade Mask R-CNN, MAE-pretrained ViT-B/L/H.
    _vitdet("COCO", "mask_rcnn_vitdet_b_100ep", "f325346929/model_final_61ccd1.pkl", 51.6, 45.9),
    _vitdet("COCO", "mask_rcnn_vitdet_l_100ep", "f325599698/model_final_6146ed.pkl", 55.5, 49.2),
    _vitdet("COCO", "mask_rcnn_vitdet_h_75ep", "f329145471/model_final_7224f1.pkl", 56.7, 50.2),
    _vitdet("COCO", "cascade_mask_rcnn_vitdet_b_100ep", "f325358525/model_final_435fa9.pkl", 54.0, 46.7),
    _vitdet("COCO", "cascade_mask_rcnn_vitdet_l_100ep", "f328021305/model_final_1a9f28.pkl", 57.6, 50.0),
    _vitdet("COCO", "cascade_mask_rcnn_vitdet_h_75ep", "f328730692/model_final_f05665.pkl", 58.7, 51.0),
    # ViTDet on LVIS v1.
    _vitdet("LVIS", "mask_rcnn_vitdet_b_100ep", "329225748/model_final_5251c5.pkl", 40.2, 38.2),
    _vitdet("LVIS", "mask_rcnn_vitdet_l_100ep", "329211570/model_final_021b3a.pkl", 46.1, 43.6),
    _vitdet("LVIS", "mask_rcnn_vitdet_h_100ep", "332434656/model_final_866730.pkl", 49.1, 46.0),
    _vitdet("LVIS", "cascade_mask_rcnn_vitdet_b_100ep", "329226874/model_final_df306f.pkl", 43.0, 38.9),
    _vitdet("LVIS", "cascade_mask_rcnn_vitdet_l_100ep", "329042206/model_final_3e81c2.pkl", 49.2, 44.5),
    _vitdet("LVIS", "cascade_mask_rcnn_vitdet_h_100ep", "332552778/model_final_11bbb7.pkl", 51.5, 46.6),
    # Swin in the ViTDet project (detectron2's SwinTransformer keys, converted on load).
    _vitdet("COCO", "cascade_mask_rcnn_swin_b_in21k_50ep", "f342979038/model_final_246a82.pkl", 53.9, 46.2, "swin"),
    _vitdet("COCO", "cascade_mask_rcnn_swin_l_in21k_50ep", "f342979186/model_final_7c897e.pkl", 55.0, 47.2, "swin"),
    _vitdet("LVIS", "cascade_mask_rcnn_swin_b_in21k_50ep", "329222304/model_final_a3a348.pkl", 44.0, 39.6, "swin"),
    _vitdet("LVIS", "cascade_mask_rcnn_swin_l_in21k_50ep", "329222724/model_final_2b94db.pkl", 46.0, 41.4, "swin"),
    # MAE pretraining (ViTDet starts from the encoder, MIMDet from the full model).
    ZooEntry("mae/in1k/vit_base", D2_HOST + "ImageNetPretrained/MAE/mae_pretrain_vit_base.pth", "pretrained",
             config="configs/ViTDet/COCO/mask_rcnn_vitdet_b_100ep.py", box_ap=51.6, mask_ap=45.9, source=_VITDET_README),
    ZooEntry("mae/in1k/vit_large", D2_HOST + "ImageNetPretrained/MAE/mae_pretrain_vit_large.pth", "pretrained",
             config="configs/ViTDet/COCO/mask_rcnn_vitdet_l_100ep.py", box_ap=55.5, mask_ap=49.2, source=_VITDET_README),
    ZooEntry("mae/in1k/vit_huge_p14to16", D2_HOST + "ImageNetPretrained/MAE/mae_pretrain_vit_huge_p14to16.pth",
             "pretrained", config="configs/ViTDet/COCO/mask_rcnn_vitdet_h_75ep.py", box_ap=56.7, mask_ap=50.2,
             source=_VITDET_README),
    ZooEntry("mae/in1k/vit_base_full", "https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_base_full.pth",
             "pretrained", config=_MIMDET_CONFIG.format("base"), box_ap=51.7, mask_ap=46.2, params_m=127.96, source="hustvl/MIMDet README"),
    ZooEntry("mae/in1k/vit_large_full", "https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_large_full.pth",
             "pretrained", config=_MIMDET_CONFIG.format("large"), box_ap=54.3, mask_ap=48.2, params_m=349.33, source="hustvl/MIMDet README"),
    # MIMDet releases (detectron2 checkpoints of the reference code; AP at test sample ratio 1.0).
    ZooEntry("mimdet/coco/mimdet_vit_base_mask_rcnn_fpn_3x",
             "https://github.com/hustvl/Storage/releases/download/v1.2.0/"
             "mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x.pth",
             "detector", config=_MIMDET_CONFIG.format("base"), box_ap=51.7, mask_ap=46.2, params_m=127.96, source="hustvl/MIMDet README"),
    ZooEntry("mimdet/coco/mimdet_vit_large_mask_rcnn_fpn_3x",
             "https://github.com/hustvl/Storage/releases/download/v1.2.0/"
             "mimdet_vit_large_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x.pth",
             "detector", config=_MIMDET_CONFIG.format("large"), box_ap=54.3, mask_ap=48.2, params_m=349.33, source="hustvl/MIMDet README"),
    # ImageNet backbones of the mmdet-based ConvNeXt and Swin detectors (their detector
    # files are mmdet checkpoints, which this project does not convert).
    ZooEntry("convnext/in1k/convnext_tiny", "https://dl.fbaipublicfiles.com/convnext/convnext_tiny_1k_224.pth",
             "pretrained", config="configs/ConvNeXt/COCO/mask_rcnn_convnext_t_3x.py", box_ap=46.2, mask_ap=41.7, params_m=48, source="facebookresearch/ConvNeXt object_detection "
             "(Mask R-CNN 3x)"),
    ZooEntry("convnext/in1k/convnext_small", "https://dl.fbaipublicfiles.com/convnext/convnext_small_1k_224.pth",
             "pretrained", config="configs/ConvNeXt/COCO/cascade_mask_rcnn_convnext_s_3x.py", box_ap=51.9, mask_ap=45.0, params_m=108, source="facebookresearch/ConvNeXt object_detection "
             "(Cascade Mask R-CNN 3x)"),
    ZooEntry("convnext/in1k/convnext_base", "https://dl.fbaipublicfiles.com/convnext/convnext_base_1k_224.pth",
             "pretrained", config="configs/ConvNeXt/COCO/cascade_mask_rcnn_convnext_b_3x.py", box_ap=52.7, mask_ap=45.6, params_m=146, source="facebookresearch/ConvNeXt object_detection "
             "(Cascade Mask R-CNN 3x)"),
    ZooEntry("convnext/in22k/convnext_base", "https://dl.fbaipublicfiles.com/convnext/convnext_base_22k_224.pth",
             "pretrained", config="configs/ConvNeXt/COCO/cascade_mask_rcnn_convnext_b_in22k_3x.py", box_ap=54.0, mask_ap=46.9, params_m=146, source="facebookresearch/ConvNeXt object_detection "
             "(Cascade Mask R-CNN 3x)"),
    ZooEntry("swin/in1k/swin_tiny",
             "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth",
             "pretrained", config="configs/Swin/COCO/mask_rcnn_swin_t_3x.py", box_ap=46.0, mask_ap=41.6, params_m=48, source="Swin-Transformer-Object-Detection "
             "(Mask R-CNN 3x)"),
    ZooEntry("swin/in1k/swin_small",
             "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_small_patch4_window7_224.pth",
             "pretrained", config="configs/Swin/COCO/mask_rcnn_swin_s_3x.py", box_ap=48.5, mask_ap=43.3, params_m=69, source="Swin-Transformer-Object-Detection "
             "(Mask R-CNN 3x)"),
]

ZOO = {entry.name: entry for entry in _ENTRIES}


def zoo_names():
    """Every zoo name, sorted."""
    return sorted(ZOO)


def get_zoo_entry(name):
    """The entry for ``zoo://<name>`` or ``<name>``; raises KeyError listing close names."""
    key = name[len(ZOO_SCHEME):] if name.startswith(ZOO_SCHEME) else name
    if key not in ZOO:
        import difflib

        close = difflib.get_close_matches(key, list(ZOO), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(ZOO_SCHEME + c for c in close)}?" if close else ""
        raise KeyError(f"unknown zoo name {name!r}{hint} (all names: tools/convert_checkpoint.py --list)")
    return ZOO[key]


def zoo_entry_for(checkpoint):
    """The zoo entry a checkpoint string refers to (by ``zoo://`` name or by URL), or None."""
    uri = (checkpoint or "").partition("?")[0]
    if uri.startswith(ZOO_SCHEME):
        return ZOO.get(uri[len(ZOO_SCHEME):])
    url = D2_HOST + uri[len("detectron2://"):] if uri.startswith("detectron2://") else uri
    return next((entry for entry in ZOO.values() if entry.url == url), None)
