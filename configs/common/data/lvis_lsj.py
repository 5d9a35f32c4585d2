"""LVIS v1 with large-scale jitter (the ViTDet data recipe): the COCO LSJ loader on
``lvis_v1_train`` / ``lvis_v1_val`` with repeat-factor sampling and LVIS AP."""
from .coco_lsj import dataloader
from .lvis import use_lvis

dataloader = use_lvis(dataloader)
