"""FPN Mask R-CNN for a hierarchical backbone (ConvNeXt, Swin), as in the official
ConvNeXt and Swin detection configs (mmdet's ``mask_rcnn_r50_fpn``): detectron2's FPN
Mask R-CNN with P2-P6 from res2-res5, a 1-conv RPN head, the shared 2fc box head and
the 4-conv mask head, no norms in the pyramid or heads.

Only the inputs change: both families were pretrained on RGB images normalized with
the ImageNet statistics. Each family config sets ``model.backbone.bottom_up``.
"""
from detectron2 import model_zoo

constants = model_zoo.get_config("common/data/constants.py").constants

model = model_zoo.get_config("common/models/mask_rcnn_fpn.py").model
model.pixel_mean = constants.imagenet_rgb256_mean
model.pixel_std = constants.imagenet_rgb256_std
model.input_format = "RGB"
# "???" is OmegaConf's mandatory value: instantiating without a backbone fails by name.
model.backbone.bottom_up = "???"
model.backbone.in_features = ["res2", "res3", "res4", "res5"]
