"""LVIS v1 with the multi-scale + crop recipe of the Swin, ConvNeXt and MIMDet detectors:
the COCO loader of ``coco_multiscale_crop`` on ``lvis_v1_train`` / ``lvis_v1_val`` with
repeat-factor sampling and LVIS AP."""
from .coco_multiscale_crop import dataloader
from .lvis import use_lvis

dataloader = use_lvis(dataloader)
