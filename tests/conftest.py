"""Shared fixtures: small generated datasets so training tests need no download."""
import json

import pytest
import torch

from d2backbones.data import generate_synthetic_shapes

DEMO_CONFIG = "configs/demo/vitdet_tiny.py"


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory):
    """A 32-image train and 12-image val split of the synthetic shapes, as
    ``{"train": (json, image_dir), "val": (json, image_dir)}``."""
    root = tmp_path_factory.mktemp("tiny_shapes")
    return {
        "train": generate_synthetic_shapes(str(root), "train", 32, 128, seed=10),
        "val": generate_synthetic_shapes(str(root), "val", 12, 128, seed=11),
    }


@pytest.fixture(scope="session")
def box_only_shapes(tiny_shapes, tmp_path_factory):
    """The tiny train split with every ``segmentation`` removed: (json, image_dir)."""
    json_path, image_dir = tiny_shapes["train"]
    with open(json_path) as f:
        coco = json.load(f)
    for annotation in coco["annotations"]:
        annotation.pop("segmentation")
    out = tmp_path_factory.mktemp("box_only") / "annotations.json"
    out.write_text(json.dumps(coco))
    return str(out), image_dir


def dataset_flags(name, split):
    """``--dataset NAME=json:dir`` for a (json, image_dir) pair."""
    return ["--dataset", f"{name}={split[0]}:{split[1]}"]
