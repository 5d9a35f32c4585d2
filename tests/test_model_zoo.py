"""d2backbones.model_zoo: configs by their path under configs/, and the published
checkpoint of each config that has one (no download: URLs only)."""
from collections import Counter
from pathlib import Path

import pytest

from d2backbones import model_zoo
from d2backbones.checkpoint.zoo import ZOO

REPO = Path(__file__).resolve().parents[1]


def test_config_files_are_the_checkouts_configs():
    assert model_zoo.configs_root() == REPO / "configs"
    assert Path(model_zoo.get_config_file("demo/vitdet_tiny.py")) == REPO / "configs" / "demo" / "vitdet_tiny.py"
    assert "common/train.py" in model_zoo.list_configs()


def test_every_published_detector_has_one_existing_config():
    configs = [entry.config for entry in ZOO.values() if entry.kind == "detector"]
    assert [c for c, n in Counter(configs).items() if n > 1] == []
    assert len(model_zoo.trained_configs()) == len(configs)
    assert set(model_zoo.trained_configs()) <= set(model_zoo.list_configs())


def test_trained_sets_the_published_detector():
    path = "ViTDet/COCO/cascade_mask_rcnn_vitdet_l_100ep.py"
    url = "https://dl.fbaipublicfiles.com/detectron2/ViTDet/COCO/cascade_mask_rcnn_vitdet_l/f328021305/model_final_1a9f28.pkl"
    assert model_zoo.get_checkpoint_url(path) == url
    assert model_zoo.get_config(path, trained=True).train.init_checkpoint == url
    # Untrained: the config's own MAE backbone.
    assert "mae_pretrain_vit_large" in model_zoo.get_config(path).train.init_checkpoint


def test_config_without_a_published_checkpoint_is_one_line():
    with pytest.raises(RuntimeError, match=r"no published checkpoint was trained with demo/vitdet_tiny.py") as error:
        model_zoo.get_checkpoint_url("demo/vitdet_tiny.py")
    assert "\n" not in str(error.value)


def test_unknown_config_names_the_close_ones():
    with pytest.raises(RuntimeError, match=r"did you mean demo/vitdet_tiny.py") as error:
        model_zoo.get_config_file("configs/demo/vitdet_tiny.py")
    assert "\n" not in str(error.value)
