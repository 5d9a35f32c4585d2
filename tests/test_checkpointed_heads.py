"""The checkpointed RPN, box and mask heads against detectron2's own: the same outputs,
gradients and BatchNorm statistics, with nothing of theirs kept for backward."""
import pytest
import torch
from conftest import meta_device
from detectron2.config import LazyConfig, instantiate
from detectron2.layers import ShapeSpec
from detectron2.modeling.proposal_generator import StandardRPNHead
from detectron2.modeling.roi_heads import FastRCNNConvFCHead, MaskRCNNConvUpsampleHead

from d2backbones.modeling import (
    CheckpointedFastRCNNConvFCHead,
    CheckpointedMaskRCNNConvUpsampleHead,
    CheckpointedRPNHead,
)

CHANNELS = 32
LOW_MEMORY_CONFIG = (
    "configs/MIMDet/COCO/mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x_heads_recomputed.py"
)


def rpn_heads():
    kwargs = dict(in_channels=CHANNELS, num_anchors=3, conv_dims=[-1, -1])
    return StandardRPNHead(**kwargs), CheckpointedRPNHead(**kwargs)


def box_heads():
    kwargs = dict(input_shape=ShapeSpec(channels=CHANNELS, height=7, width=7), conv_dims=[CHANNELS] * 4,
                  fc_dims=[64], conv_norm="BN")
    return FastRCNNConvFCHead(**kwargs), CheckpointedFastRCNNConvFCHead(**kwargs)


def mask_heads():
    kwargs = dict(input_shape=ShapeSpec(channels=CHANNELS, height=14, width=14), num_classes=3,
                  conv_dims=[CHANNELS] * 3, conv_norm="BN")
    return MaskRCNNConvUpsampleHead(**kwargs), CheckpointedMaskRCNNConvUpsampleHead(**kwargs)


def rpn_inputs():
    return [[torch.randn(2, CHANNELS, 16, 24), torch.randn(2, CHANNELS, 8, 12)]]


def run_rpn(head, features):
    objectness, deltas = head(features)
    return objectness + deltas


def run_box(head, x):
    return [head(x)]


def run_mask(head, x):
    return [head.layers(x)]


HEADS = {
    "rpn": (rpn_heads, rpn_inputs, run_rpn),
    "box": (box_heads, lambda: [torch.randn(12, CHANNELS, 7, 7)], run_box),
    "mask": (mask_heads, lambda: [torch.randn(6, CHANNELS, 14, 14)], run_mask),
}


def leaves(inputs):
    """The input tensors of a head's call, flattened, each a fresh leaf with grad."""
    flat = inputs[0] if isinstance(inputs[0], list) else inputs
    return [t.clone().requires_grad_() for t in flat]


def call_with(inputs, tensors):
    return [tensors] if isinstance(inputs[0], list) else tensors


def nbytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors)


def loss_and_saved_bytes(outputs_of):
    """A loss of the head's outputs (it keeps them: ``square`` saves its input), and the
    bytes the autograd graph keeps for backward outside any checkpoint."""
    total = []

    def pack(tensor):
        total.append(nbytes([tensor]))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        outputs = outputs_of()
        loss = sum(t.square().mean() for t in outputs)
    return loss, sum(total), nbytes(outputs)


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_same_outputs_gradients_and_norm_statistics_as_detectron2s_head(kind):
    make_heads, make_inputs, run = HEADS[kind]
    torch.manual_seed(0)
    plain, checkpointed = make_heads()
    checkpointed.load_state_dict(plain.state_dict())
    inputs = make_inputs()
    results = {}
    for name, head in (("plain", plain), ("checkpointed", checkpointed)):
        head.train()
        tensors = leaves(inputs)
        loss, kept, output_bytes = loss_and_saved_bytes(lambda: run(head, *call_with(inputs, tensors)))
        loss.backward()
        results[name] = {"loss": loss.detach(), "kept": kept, "output_bytes": output_bytes,
                         "input_grads": [t.grad for t in tensors],
                         "param_grads": {n: p.grad for n, p in head.named_parameters()},
                         "buffers": {n: b.clone() for n, b in head.named_buffers()}}
    plain_run, checkpointed_run = results["plain"], results["checkpointed"]
    torch.testing.assert_close(checkpointed_run["loss"], plain_run["loss"], rtol=0, atol=0)
    for ours, theirs in zip(checkpointed_run["input_grads"], plain_run["input_grads"]):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
    for name, grad in plain_run["param_grads"].items():
        torch.testing.assert_close(checkpointed_run["param_grads"][name], grad, rtol=1e-6, atol=1e-7, msg=name)
    # BatchNorm moved once, as without checkpointing: the recomputation's update was undone.
    assert plain_run["buffers"].keys() == checkpointed_run["buffers"].keys()
    if kind != "rpn":
        assert any("running_mean" in name for name in plain_run["buffers"])
        assert all(int(b) == 1 for n, b in plain_run["buffers"].items() if n.endswith("num_batches_tracked"))
    for name, buffer in plain_run["buffers"].items():
        torch.testing.assert_close(checkpointed_run["buffers"][name], buffer, rtol=0, atol=0, msg=name)
    # Outside the loss's copy of the outputs, ours keeps at most its input (a tensor
    # argument is saved by the checkpoint; a list is held by the recomputation instead);
    # detectron2's head keeps its activations, more than one input's worth on top.
    input_bytes = nbytes(leaves(inputs))
    assert checkpointed_run["kept"] - checkpointed_run["output_bytes"] <= input_bytes
    assert plain_run["kept"] - plain_run["output_bytes"] > 2 * input_bytes


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_eval_and_no_grad_run_the_plain_forward(kind):
    make_heads, make_inputs, run = HEADS[kind]
    plain, checkpointed = make_heads()
    checkpointed.load_state_dict(plain.state_dict())
    inputs = make_inputs()
    plain.eval()
    checkpointed.eval()
    # Eval with grad (a saliency map, say): nothing is recomputed, the activations are kept.
    _, kept, output_bytes = loss_and_saved_bytes(lambda: run(checkpointed, *call_with(inputs, leaves(inputs))))
    assert kept - output_bytes > 2 * nbytes(leaves(inputs))
    with torch.no_grad():
        torch.testing.assert_close(run(checkpointed, *inputs), run(plain, *inputs), rtol=0, atol=0)


def test_low_memory_mimdet_config_is_the_recipe_with_the_three_heads_recomputed():
    base = LazyConfig.load(LOW_MEMORY_CONFIG.replace("_heads_recomputed", ""))
    low_memory = LazyConfig.load(LOW_MEMORY_CONFIG)
    assert low_memory.model.proposal_generator.head._target_ is CheckpointedRPNHead
    assert low_memory.model.roi_heads.box_head._target_ is CheckpointedFastRCNNConvFCHead
    assert low_memory.model.roi_heads.mask_head._target_ is CheckpointedMaskRCNNConvUpsampleHead
    with meta_device():
        model = instantiate(low_memory.model)
    assert isinstance(model.proposal_generator.rpn_head, CheckpointedRPNHead)
    assert isinstance(model.roi_heads.box_head, CheckpointedFastRCNNConvFCHead)
    assert isinstance(model.roi_heads.mask_head, CheckpointedMaskRCNNConvUpsampleHead)
    # Apart from the three heads' classes, the recipe unchanged.
    for name in ("proposal_generator.head", "roi_heads.box_head", "roi_heads.mask_head"):
        for config in (base, low_memory):
            node = config.model
            for part in name.split("."):
                node = node[part]
            node.pop("_target_")
    assert LazyConfig.to_py(low_memory.model) == LazyConfig.to_py(base.model)
    assert LazyConfig.to_py(low_memory.optimizer) == LazyConfig.to_py(base.optimizer)
    assert low_memory.train.max_iter == base.train.max_iter
