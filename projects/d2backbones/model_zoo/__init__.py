"""The configs of this project, and the published checkpoints of those that have one,
by the API of ``detectron2.model_zoo``::

    from d2backbones import model_zoo

    cfg = model_zoo.get_config("ViTDet/COCO/mask_rcnn_vitdet_b_100ep.py", trained=True)
    model = model_zoo.get("demo/vitdet_micro.py")

Config paths are relative to the repository's ``configs/``, which a wheel carries
inside the package (``d2backbones/model_zoo/configs``).
"""
from .model_zoo import configs_root, get, get_checkpoint_url, get_config, get_config_file, list_configs, trained_configs

__all__ = ["configs_root", "get", "get_checkpoint_url", "get_config", "get_config_file", "list_configs", "trained_configs"]
