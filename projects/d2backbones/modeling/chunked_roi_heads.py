"""detectron2's ``StandardROIHeads``, evaluated over chunks of RoIs on the CPU.

At test time the box branch pools and classifies every proposal (300 an image on
the demo: 2,400 a batch) and the mask branch every detection (up to 100 an image).
Pooled all at once, their features and the mask head's upsampled activations are
tens of MB a batch (800 RoIs x 64 channels x 28 x 28 floats: 160 MB): they miss
the CPU caches, and each fresh allocation that size is mapped and zero-faulted
page by page again (on this project's 2-core machine, a 40 MB ``torch.zeros``
takes 30-150 ms). Over chunks of RoIs whose largest activation fits in
``chunk_bytes`` the same modules run on a few MB at a time, the mask head's in
channels-last layout with its ReLU in place. Each RoI is pooled and predicted on its
own either way: only the kernels' choice for another batch size or layout can round
differently. Measured on the demo's trained model: boxes and scores equal, mask
probabilities within 2e-7, and the 300 val images' COCO records identical; on a
COCO-sized mask head (256 channels, 4 convs) logits within 6e-6.
"""
import torch
from detectron2.modeling.roi_heads import MaskRCNNConvUpsampleHead, StandardROIHeads
from detectron2.modeling.roi_heads.mask_head import BaseMaskRCNNHead, mask_rcnn_inference
from torch import nn
from torch.nn import functional as F

__all__ = ["ChunkedStandardROIHeads"]

# Measured on the demo's mask head (64 channels, one CPU thread): its layers over 800
# RoIs take 0.23 s in chunks of 8-32 RoIs (0.8-6 MB), 0.61 s in chunks of 64, 0.82 s
# at once; 2, 4, 8 and 16 MB chunks gave whole evaluation batches within noise.
CHUNK_BYTES = 4 << 20


def _box_chunks(boxes_per_image, rois_per_chunk):
    """Split per-image ``Boxes`` into consecutive chunks of the images' boxes taken in
    order; each chunk is again one ``Boxes`` per image (most of them empty)."""
    total = sum(len(b) for b in boxes_per_image)
    for start in range(0, total, rois_per_chunk):
        end, offset, chunk = start + rois_per_chunk, 0, []
        for boxes in boxes_per_image:
            chunk.append(boxes[min(max(start - offset, 0), len(boxes)) : min(max(end - offset, 0), len(boxes))])
            offset += len(boxes)
        yield chunk


def _pooled_bytes(pooler, features):
    """Bytes of one RoI's pooled features: channels x output size, in the features' dtype."""
    height, width = pooler.output_size
    return features[0].shape[1] * height * width * features[0].element_size()


class ChunkedStandardROIHeads(StandardROIHeads):
    """``StandardROIHeads`` (same arguments, parameters and state-dict keys) whose
    box and mask branches, in eval mode on the CPU, pool and predict chunks of RoIs.

    Training, other devices, and tracing or scripting for export (which would record
    one batch's chunk count) run detectron2's code as it is.

    Args:
        chunk_bytes (int): the size of a chunk's largest activation: the pooled box
            features, or the mask head's upsampled features (taken as four times its
            pooled ones); 0 runs every RoI at once, as detectron2 does.
        other arguments: those of ``StandardROIHeads``.
    """

    def __init__(self, *, chunk_bytes=CHUNK_BYTES, **kwargs):
        super().__init__(**kwargs)
        self.chunk_bytes = chunk_bytes

    def _chunked(self, features):
        exporting = torch.jit.is_tracing() or torch.jit.is_scripting()
        return not (self.training or exporting or not self.chunk_bytes or features[0].device.type != "cpu")

    def _forward_box(self, features, proposals):
        level_features = [features[f] for f in self.box_in_features]
        if not self._chunked(level_features) or sum(len(p) for p in proposals) == 0:
            return super()._forward_box(features, proposals)
        # ROIAlign makes its input contiguous on every call: once here, not once a chunk.
        level_features = [f.contiguous() for f in level_features]
        rois_per_chunk = max(1, self.chunk_bytes // _pooled_bytes(self.box_pooler, level_features))
        chunks = [
            self.box_predictor(self.box_head(self.box_pooler(level_features, boxes)))
            for boxes in _box_chunks([p.proposal_boxes for p in proposals], rois_per_chunk)
        ]
        # (class scores, box deltas) of every proposal, in the proposals' order.
        predictions = tuple(torch.cat(parts) for parts in zip(*chunks))
        pred_instances, _ = self.box_predictor.inference(predictions, proposals)
        return pred_instances

    def _forward_mask(self, features, instances):
        # Box-only heads have no mask head at all; chunked are the heads whose test-time
        # forward is detectron2's (layers, then mask_rcnn_inference).
        if not self.mask_on or self.mask_pooler is None or not self._plain_mask_head():
            return super()._forward_mask(features, instances)
        level_features = [features[f] for f in self.mask_in_features]
        if not self._chunked(level_features) or sum(len(x) for x in instances) == 0:
            return super()._forward_mask(features, instances)
        level_features = [f.contiguous() for f in level_features]
        rois_per_chunk = max(1, self.chunk_bytes // (4 * _pooled_bytes(self.mask_pooler, level_features)))
        # Channels-last: oneDNN's deconvolution takes half the time on the demo's head.
        logits = torch.cat([
            self._mask_logits(self.mask_pooler(level_features, boxes).contiguous(memory_format=torch.channels_last))
            for boxes in _box_chunks([x.pred_boxes for x in instances], rois_per_chunk)
        ])
        # What the mask head does with its logits at test time: each box's class mask, as probabilities.
        mask_rcnn_inference(logits, instances)
        return instances

    def _plain_mask_head(self):
        head = self.mask_head
        return isinstance(head, BaseMaskRCNNHead) and type(head).forward is BaseMaskRCNNHead.forward

    def _mask_logits(self, x):
        """The mask head's layers on pooled features ``x`` (R, C, H, W), with its ReLU
        layers in place: nothing keeps their inputs at test time, and a second upsampled
        activation a chunk is what gets freed to the OS and faulted in again (measured:
        the demo's head over 36 chunks of 20 RoIs, 0.27 s -> 0.10 s of CPU)."""
        if type(self.mask_head).layers is not MaskRCNNConvUpsampleHead.layers:
            return self.mask_head.layers(x)
        for layer in self.mask_head:
            x = F.relu_(x) if isinstance(layer, nn.ReLU) else layer(x)
        return x
