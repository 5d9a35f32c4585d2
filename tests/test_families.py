"""What every hierarchical family (ConvNeXt, Swin) must show, one parametrized test each:
detectors of the published size, and a demo config whose loss falls in a short run."""
import math
from pathlib import Path

import pytest
from conftest import assert_loss_fell, meta_param_count, train_briefly

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# The parameter counts the ConvNeXt and Swin papers publish for their COCO detectors.
PUBLISHED_SIZES = {
    "ConvNeXt/COCO/mask_rcnn_convnext_t_3x.py": 48e6,
    "ConvNeXt/COCO/cascade_mask_rcnn_convnext_t_3x.py": 86e6,
    "Swin/COCO/mask_rcnn_swin_t_3x.py": 48e6,
    "Swin/COCO/cascade_mask_rcnn_swin_t_3x.py": 86e6,
}


@pytest.mark.parametrize("config, published", PUBLISHED_SIZES.items(), ids=list(PUBLISHED_SIZES))
def test_detector_sizes_match_the_paper(config, published):
    count = meta_param_count(CONFIGS / config)
    assert math.isclose(count, published, rel_tol=0.02), count


@pytest.mark.slow
@pytest.mark.parametrize("config", ["configs/demo/convnext_tiny.py", "configs/demo/swin_tiny.py"])
def test_short_training_run_lowers_the_loss(config, two_shapes, tmp_path):
    train_briefly(config, two_shapes, tmp_path)
    assert_loss_fell(tmp_path)
