#!/usr/bin/env python
"""Train or evaluate any d2backbones LazyConfig, single- or multi-process.

    tools/train_net.py --config-file configs/ViTDet/COCO/mask_rcnn_vitdet_b_100ep.py --num-gpus 8
    tools/train_net.py --config-file CFG --eval-only train.init_checkpoint=model_final.pth
    tools/train_net.py --config-file CFG --dataset mine=ann.json:images/ \
        dataloader.train.dataset.names=mine dataloader.test.dataset.names=mine

Flags and overrides are those of detectron2's ``lazyconfig_train_net.py``; see ``--help``.
Reliability: ``--resume`` continues a killed run from its newest complete checkpoint,
exactly as if it had not stopped (same seed, CPU); unreadable images are skipped and
reported (``--strict-data`` makes them errors); a NaN/Inf loss stops training with the
iteration, the loss terms and the last good checkpoint (``train.non_finite_loss=skip``
skips such steps instead). Slurm: ``tools/submit.py``.
"""
from d2backbones.engine.cli import run

if __name__ == "__main__":
    run()
