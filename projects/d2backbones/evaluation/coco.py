"""COCO evaluation through faster-coco-eval, with pycocotools as the fallback.

detectron2's ``COCOEvaluator`` has a slot for a fast ``COCOeval`` implementation,
filled by its compiled ``_C`` extension, which the PyPI build of detectron2 does
not ship. This evaluator fills that slot with faster-coco-eval's
``COCOeval_faster`` (same API and AP figures, several times faster) and says so
in the log; without faster-coco-eval it logs the fallback to pycocotools.
Predictions become result records with every mask of an image encoded in one
call (:mod:`.coco_records`): the same records as detectron2's, sooner.
"""
import logging

from detectron2.evaluation import COCOEvaluator as D2COCOEvaluator
from detectron2.evaluation import coco_evaluation

from ..utils import temporarily_set
from .coco_records import instances_to_coco_records

try:
    from faster_coco_eval import COCOeval_faster
except ImportError:
    COCOeval_faster = None

logger = logging.getLogger(__name__)


class COCOEvaluator(D2COCOEvaluator):
    """detectron2's ``COCOEvaluator`` (same arguments) computing AP with faster-coco-eval."""

    def __init__(self, dataset_name, tasks=None, distributed=True, output_dir=None, *, use_fast_impl=True, **kwargs):
        super().__init__(dataset_name, tasks, distributed, output_dir, use_fast_impl=False, **kwargs)
        self._cocoeval_fn = COCOeval_faster if use_fast_impl else None
        if use_fast_impl and COCOeval_faster is None:
            logger.warning("faster-coco-eval is not installed; falling back to pycocotools' COCOeval.")
        elif self._cocoeval_fn is not None:
            logger.info("COCO AP is computed with faster-coco-eval.")

    def process(self, inputs, outputs):
        """detectron2's ``process`` (the same stored predictions), converting with
        :func:`instances_to_coco_records`."""
        # detectron2 reads the converter from its module global, as it does COCOeval_opt.
        with temporarily_set(coco_evaluation, "instances_to_coco_json", instances_to_coco_records):
            super().process(inputs, outputs)

    def _eval_predictions(self, predictions, img_ids=None):
        if self._cocoeval_fn is None:
            return super()._eval_predictions(predictions, img_ids)
        # detectron2 reads its fast implementation from this module global at call time
        # and takes no argument for it; overriding the whole method instead would copy
        # detectron2's result unmapping and json writing. So the global is swapped for
        # this call only.
        with temporarily_set(coco_evaluation, "COCOeval_opt", self._cocoeval_fn), temporarily_set(
            self, "_use_fast_impl", True
        ):
            return super()._eval_predictions(predictions, img_ids)
