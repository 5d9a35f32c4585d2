"""Evaluation-time settings, read by ``do_test``.

``test.aug``: test-time augmentation (off by default), see
``d2backbones.inference.tta``; e.g. ``--eval-only test.aug.enabled=True
test.aug.min_sizes=[96,128,160] test.aug.flip=True``.
"""
from d2backbones.inference.tta import AUG_DEFAULTS

test = dict(aug=dict(AUG_DEFAULTS))
