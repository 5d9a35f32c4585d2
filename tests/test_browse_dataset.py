"""tools/browse_dataset.py: the ground truth is drawn after the config's own train mapper."""
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import DEMO_CONFIG, MICRO_CONFIG, dataset_flags, load_tool
from detectron2.config import LazyCall as L
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from PIL import Image

from d2backbones.analysis.browse import draw_sample, mapped_samples, original_records
from d2backbones.data import register_user_dataset
from d2backbones.engine import load_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def always_flipped(tiny_shapes):
    """The demo config on the tiny train split with one augmentation: a certain horizontal flip."""
    register_user_dataset("tiny_browse", *tiny_shapes["train"])
    cfg = load_config(DEMO_CONFIG, ["dataloader.train.dataset.names=tiny_browse", "dataloader.train.num_workers=0",
                                    "dataloader.train.total_batch_size=2"])
    cfg.dataloader.train.mapper.augmentations = [L(T.RandomFlip)(prob=1.0, horizontal=True)]
    return cfg


def test_samples_are_the_mapper_output(always_flipped):
    samples = mapped_samples(always_flipped, 3)
    originals = original_records(always_flipped)
    assert len(samples) == 3
    for sample in samples:
        record = originals[sample["file_name"]]
        boxes = np.array([BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in record["annotations"]])
        mirrored = np.stack([record["width"] - boxes[:, 2], boxes[:, 1], record["width"] - boxes[:, 0], boxes[:, 3]], 1)
        np.testing.assert_allclose(sample["instances"].gt_boxes.tensor.numpy(), mirrored, atol=1e-4)
        # The drawing: the image as loaded, an 8-px gap, the flipped sample (as large), at scale 2.
        drawn = draw_sample(sample, MetadataCatalog.get("tiny_browse"), "RGB", record, scale=2.0)
        assert drawn.shape == (2 * record["height"], 4 * record["width"] + 8, 3)


def test_browse_dataset_cli(tiny_shapes, tmp_path):
    """vitdet_micro's LSJ-style pipeline (flip, scale 0.8-1.25 of 64 px, 64-px crop) on 128-px images."""
    command = [sys.executable, os.path.join(REPO, "tools", "browse_dataset.py"), "--config-file", MICRO_CONFIG,
               *dataset_flags("tiny_browse_cli", tiny_shapes["train"]), "--num", "3", "--output", str(tmp_path)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, env=ENV, cwd=REPO)
    assert completed.returncode == 0, completed.stderr[-2000:]
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 3 and all(f.endswith(".png") for f in files)
    for name in files:
        height, width = np.asarray(Image.open(tmp_path / name)).shape[:2]
        # The square crop (at most 64 px) drawn 384 px high, so that its labels can be read,
        # beside the square image as loaded at that height.
        assert abs(height - 384) <= 1 and abs(width - (2 * 384 + 8)) <= 2
    assert "Wrote 3 samples of tiny_browse_cli" in completed.stdout


def test_browse_dataset_unknown_dataset_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_tool("browse_dataset").main(["--config-file", DEMO_CONFIG, "--dataset", "no_such_set", "--output", str(tmp_path)])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Dataset 'no_such_set' is not registered")
