#!/usr/bin/env python
"""MIMDet-B Mask R-CNN, ours against the official code (hustvl/MIMDet), on CPU.

    benchmarks/mimdet_vs_official.py --official-path /tmp/mimdet_official
    benchmarks/mimdet_vs_official.py --official-path /tmp/mimdet_official --sample-ratios 0.5 0.25 --inference
    benchmarks/mimdet_vs_official.py --official-path /tmp/mimdet_official --profile --no-memory --rounds 1
    benchmarks/mimdet_vs_official.py --official-path /tmp/mimdet_official --batch-sizes 1 2 4 --rounds 1
    benchmarks/mimdet_vs_official.py --official-path /tmp/mimdet_official \
        --our-config configs/MIMDet/COCO/mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x_heads_recomputed.py

``--official-path`` is a checkout of https://github.com/hustvl/MIMDet (nothing is
downloaded here; without the path the script prints one line and exits 0).

Models: ours is ``configs/MIMDet/COCO/mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x.py``
(``--our-config`` names another, e.g. its ``_heads_recomputed`` variant, which also
recomputes the heads in backward: not the official checkpointing, so not the issue's
like-for-like comparison; the profile's recompute estimate leaves the heads out);
the official one is built from the checkout's own LazyConfig
``configs/mimdet/mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x.py``
(its ``models/`` package, imported with the checkout on ``sys.path``). On both sides:

- activation checkpointing as the official config sets it: on for the ConvStem stages,
  the encoder blocks and the decoder blocks (ours: ``use_act_checkpoint`` and
  ``stem_act_checkpoint``, both already True in our config). Differences that remain
  in *how*: the official code uses reentrant ``torch.utils.checkpoint`` and checkpoints
  a stage only when its input requires grad (so not ConvStem stage 0, whose input is the
  image), and also checkpoints ``decoder_norm``; ours is non-reentrant and checkpoints
  the four ConvStem stages as one segment (so the stride-2 map is not kept either).
- SyncBN -> plain ``BN`` in the FPN and in the box and mask head convs (one process);
- drop path as configured (encoder 0.1, decoder 0): both use timm's ``DropPath`` and
  preserve the RNG state through checkpointing, so the same seed draws the same masks;
- the same weights: the official model's random init is saved in the official key
  format and loaded into ours through ``d2backbones.checkpoint.load_checkpoint``, which
  must match every key (nothing missing, unexpected or mismatched). For ``--inference``
  the box classifier weights of both are scaled by ``CLASSIFIER_WEIGHT_SCALE`` so that
  eval keeps detections to compare.

Token sampling: both sides draw one ``torch.rand(B, L)`` and keep the ``int(L * r)``
lowest (the official keeps them in noise order, ours sorted by position, which global
attention without rel-pos does not see). Every compared step is seeded alike, and the
kept ids of both sides, recorded by forward hooks, are checked equal.

Shims (in this script only, the checkout is not modified): the official
``models/__init__.py`` imports ``models/benchmarking.py`` (a ViTDet baseline, not used
here), which imports ``einops``; when ``einops`` is not installed a stub module stands
in (its ``rearrange`` raises if called). The official ``cp.checkpoint`` calls pass no
``use_reentrant``; torch warns and uses reentrant checkpointing; that warning is
silenced. ``utils/pos_embed.py`` uses ``np.float``, which NumPy >= 1.24 removed: it is
set back to the builtin ``float`` (what it aliased: float64, same maths). Nothing else
is patched.

Steps: one image (``--input-size``, default 800x1216; ``--batch-sizes`` for more per
step, each a row) with ``BOXES_PER_IMAGE`` boxes and masks; a training step is forward +
backward of the summed losses (no optimizer).
Agreement first (losses, gradients: relative L2 norm over all parameters and the worst
parameter's max-abs ratio), then time: both sides alternating round by round, median of
``--rounds`` after ``--warmup-rounds``. Peak memory: each side in a fresh process
(``--memory-worker``), peak RSS growth (VmHWM reset through /proc/self/clear_refs) of one
training step over the RSS after building. ``--inference``: eval mode at ratio 1.0 with
post-processing, detections compared, then timed. ``--profile``: per-module forward,
checkpoint-recompute and backward seconds and saved-activation megabytes of one step
per side (forward hooks; recomputation shows as module forwards during backward).
"""
import argparse
import contextlib
import datetime
import itertools
import json
import os
import sys
import tempfile
import time
import types
import warnings
from functools import partial

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUR_CONFIG = "configs/MIMDet/COCO/mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x.py"
OFFICIAL_CONFIG = "configs/mimdet/mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x.py"
SIDES = ("ours", "official")
DEFAULT_INPUT_SIZE = (800, 1216)
BOXES_PER_IMAGE = 3
CLASSIFIER_WEIGHT_SCALE = 30.0
# Issue #16: ours at most 0.8x the official step time and 0.6x its peak-memory growth.
TARGETS = {"time": 0.8, "memory": 0.6}
SKIP_MESSAGE = "mimdet_vs_official: no official MIMDet checkout given (--official-path); skipped"
# Module groups of the profile: (label, name prefix); names are the same on both sides.
PROFILE_GROUPS = (
    ("ConvStem stage 0 (stride 2)", "backbone.bottom_up.encoder.patch_embed.proj.0"),
    ("ConvStem stage 1 (stride 4)", "backbone.bottom_up.encoder.patch_embed.proj.1"),
    ("ConvStem stage 2 (stride 8)", "backbone.bottom_up.encoder.patch_embed.proj.2"),
    ("ConvStem stage 3 (stride 16)", "backbone.bottom_up.encoder.patch_embed.proj.3"),
    ("encoder blocks", "backbone.bottom_up.encoder.blocks"),
    ("decoder blocks", "backbone.bottom_up.decoder.decoder_blocks"),
    ("decoder norm", "backbone.bottom_up.decoder.decoder_norm"),
    ("FPN convs", "backbone.lateral_convs|backbone.output_convs|backbone.fpn_"),
    ("RPN", "proposal_generator"),
    ("ROI heads", "roi_heads"),
)


# ---- pure helpers (tested in tests/test_mimdet_vs_official_benchmark.py) ---------------
MIN_SIDE = 32  # the ConvStem's total stride, times two


def parse_size(text):
    """"800x1216" or "800" -> (height, width), each side at least MIN_SIDE."""
    from d2backbones.benchmarking import parse_size as parse_pixels

    size = parse_pixels(text)
    if min(size) < MIN_SIDE:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: want N or HEIGHTxWIDTH, each >= {MIN_SIDE}")
    return size


def kept_ids_from_restore(ids_restore, ratio):
    """The official encoder's kept grid positions, sorted: it keeps ``ids_keep[:, :int(L * r)]``
    with ``ids_keep = argsort(ids_restore)``."""
    num_keep = int(ids_restore.shape[1] * ratio)
    return ids_restore.argsort(dim=1)[:, :num_keep].sort(dim=1).values


def relative_l2(ours, reference):
    """|ours - reference| / |reference| over lists of tensors (L2 norms of the concatenation)."""
    diff = sum(float((a.double() - b.double()).square().sum()) for a, b in zip(ours, reference))
    ref = sum(float(b.double().square().sum()) for b in reference)
    return (diff / ref) ** 0.5 if ref > 0 else diff ** 0.5


def profile_group(name):
    """Label of the PROFILE_GROUPS entry a module name belongs to, or None."""
    for label, prefixes in PROFILE_GROUPS:
        for prefix in prefixes.split("|"):
            if name == prefix or name.startswith(prefix + ".") or (prefix.endswith("_") and name.startswith(prefix)):
                return label
    return None


def ratio_cell(ours, official):
    return f"{ours / official:.2f}" if ours is not None and official else "-"


def verdict(ratio, target):
    return "met" if ratio <= target else "not met"


# ---- import shims and model building ---------------------------------------------------
def install_official_shims():
    """Let the official ``models`` package import here (see the module docstring)."""
    try:
        import einops  # noqa: F401
    except ImportError:
        stub = types.ModuleType("einops")

        def rearrange(*args, **kwargs):
            raise RuntimeError("einops stub (mimdet_vs_official.py): only the official ViTDet baseline needs it")

        stub.rearrange = rearrange
        sys.modules["einops"] = stub
    import numpy as np

    if "float" not in np.__dict__:
        np.float = float  # the alias NumPy 1.24 removed; utils/pos_embed.py uses it (float64, unchanged maths)
    warnings.filterwarnings("ignore", message="torch.utils.checkpoint: the use_reentrant parameter")
    warnings.filterwarnings("ignore", category=FutureWarning)


def add_official_to_path(official_path):
    official_path = os.path.abspath(official_path)
    if official_path not in sys.path:
        sys.path.insert(0, official_path)
    install_official_shims()


def build_official(official_path):
    """The official MIMDet-B Mask R-CNN from its LazyConfig, BN for SyncBN, train mode."""
    from detectron2.config import LazyConfig, instantiate

    add_official_to_path(official_path)
    cfg = LazyConfig.load(os.path.join(official_path, OFFICIAL_CONFIG))
    cfg.model.backbone.norm = "BN"
    cfg.model.roi_heads.box_head.conv_norm = "BN"
    cfg.model.roi_heads.mask_head.conv_norm = "BN"
    cfg.model.backbone.bottom_up.encoder.pretrained = None
    torch.manual_seed(0)
    with contextlib.redirect_stdout(sys.stderr):  # it prints "pretrained weights from scratch"
        model = instantiate(cfg.model)
    return model.train()


def build_ours(config=OUR_CONFIG):
    """Our MIMDet-B Mask R-CNN from our config, BN for SyncBN, train mode."""
    from detectron2.config import LazyConfig, instantiate

    cfg = LazyConfig.load(os.path.join(REPO, config))
    cfg.model.backbone.norm = "BN"
    cfg.model.roi_heads.box_head.conv_norm = "BN"
    cfg.model.roi_heads.mask_head.conv_norm = "BN"
    torch.manual_seed(0)
    return instantiate(cfg.model).train()


def shared_weights(official):
    """The official model's init, as a state dict (cloned)."""
    return {name: value.clone() for name, value in official.state_dict().items()}


def scale_classifier(model, factor):
    """Random-init box classifiers score every class near 1/81, below the 0.05 test
    threshold: eval runs with the cls_score weights scaled, on both sides alike. Training
    agreement runs unscaled: saturated softmaxes amplify float rounding."""
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(factor)


def load_into_ours(ours, weights_path):
    """Load the official-format file through our loader; every key must match."""
    from d2backbones.checkpoint import load_checkpoint

    report = load_checkpoint(ours, weights_path)
    problems = {"missing": list(report.missing), "unexpected": list(report.unexpected),
                "mismatched": list(report.mismatched)}
    if any(problems.values()):
        raise RuntimeError(f"official weights did not load into ours one to one: {problems}")
    return {"checkpoint_format": report.checkpoint_format, "matched_keys": len(report.matched)}


def build_side(side, official_path, weights_path, our_config=OUR_CONFIG):
    if side == "official":
        model = build_official(official_path)
        model.load_state_dict(torch.load(weights_path)["model"])
    else:
        model = build_ours(our_config)
        load_into_ours(model, weights_path)
    return model


def mimdet_of(model):
    return model.backbone.bottom_up


def set_ratio(model, side, ratio):
    """Training sample ratio; the official backbone uses ``sample_ratio`` in eval too."""
    mimdet_of(model).sample_ratio = ratio


# ---- steps ---------------------------------------------------------------------------
SEED = 7


def reseed():
    from d2backbones.benchmarking import reseed_everything

    reseed_everything(SEED)


def train_step(model, batch):
    """Forward + backward of the summed losses, seeded; the losses as floats."""
    from d2backbones.benchmarking import seeded_train_step

    return seeded_train_step(model, batch, SEED)


def inference(model, side, batch):
    """Eval at ratio 1.0 with post-processing; each image's detections."""
    model.eval()
    backbone = mimdet_of(model)
    saved = backbone.sample_ratio
    if side == "official":
        backbone.sample_ratio = 1.0
    reseed()
    inputs = [{key: item[key] for key in ("image", "height", "width")} for item in batch]
    try:
        with torch.no_grad():
            return [output["instances"].to("cpu") for output in model(inputs)]
    finally:
        backbone.sample_ratio = saved


class KeptIds:
    """The sorted kept token ids of each side's last encoder call."""

    def __init__(self, models):
        self.ids = {}
        mimdet_of(models["ours"]).encoder.register_forward_hook(self._ours)
        mimdet_of(models["official"]).encoder.register_forward_hook(self._official)
        self._official_backbone = mimdet_of(models["official"])

    def _ours(self, module, inputs, output):
        self.ids["ours"] = output["kept"].detach().clone()

    def _official(self, module, inputs, output):
        self.ids["official"] = kept_ids_from_restore(output[1].detach(), self._official_backbone.sample_ratio)


def batch_for(input_size, batch_size=1, num_classes=80):
    from d2backbones.benchmarking import synthetic_batch

    return synthetic_batch(batch_size, input_size, num_classes, seed=0, boxes_per_image=BOXES_PER_IMAGE)


def train_agreement(models, batch, kept):
    losses = {side: train_step(models[side], batch) for side in SIDES}
    if set(losses["ours"]) != set(losses["official"]):
        raise RuntimeError(f"loss terms differ: {sorted(losses['ours'])} vs {sorted(losses['official'])}")
    same_ids = bool(torch.equal(kept.ids["ours"], kept.ids["official"]))
    ours_params = dict(models["ours"].named_parameters())
    pairs = [(ours_params[name].grad, param.grad) for name, param in models["official"].named_parameters()
             if param.grad is not None]
    missing_grads = [name for name, param in models["official"].named_parameters()
                     if (param.grad is None) != (ours_params[name].grad is None)]
    norms = {name: float(param.grad.norm()) for name, param in models["official"].named_parameters()
             if param.grad is not None and ours_params[name].grad is not None}
    worst_name, worst = None, -1.0
    for name, param in models["official"].named_parameters():
        # Gradients cancelled analytically (a per-channel shift before BN: decoder_norm.bias)
        # are float noise on both sides; rank only those within 1e-4 of the largest norm.
        if name not in norms or norms[name] < 1e-4 * max(norms.values()):
            continue
        err = relative_l2([ours_params[name].grad], [param.grad])
        if err > worst:
            worst_name, worst = name, err
    return {
        "kept_ids_equal": same_ids,
        "tokens_kept": int(kept.ids["ours"].shape[1]),
        "losses": losses,
        "loss_max_rel_diff": max(abs(losses["ours"][k] - losses["official"][k]) / max(abs(losses["official"][k]), 1e-12)
                                 for k in losses["official"]),
        "total_loss_rel_diff": abs(sum(losses["ours"].values()) - sum(losses["official"].values()))
        / abs(sum(losses["official"].values())),
        "grad_rel_l2": relative_l2([a for a, _ in pairs], [b for _, b in pairs]),
        "grad_worst_param": worst_name,
        "grad_worst_param_rel_l2": worst,
        "params_with_grad_on_one_side_only": missing_grads,
        # [name, rel L2, its grad norm / the largest], the 5 worst over every parameter.
        "grad_rel_l2_top5_all_params": sorted(
            ([name, relative_l2([ours_params[name].grad], [models["official"].get_parameter(name).grad]),
              norms[name] / max(norms.values())] for name in norms), key=lambda item: -item[1])[:5],
    }


def noise_order_kept_tokens(valid, num_keep):
    """``sample_kept_tokens`` without the final sort: the official's order (same draw)."""
    noise = torch.rand(valid.shape, device=valid.device).masked_fill(~valid, 2.0)
    return noise.argsort(dim=1)[:, :num_keep]


def same_order_agreement(models, batch):
    """Our step with the kept tokens in the official's order (a hook on our sampling, for
    this check only) against the official step, which must have run just before with the
    same seed: largest absolute loss and gradient differences (0 means bit-identical)."""
    import d2backbones.mimdet.backbone as our_backbone

    official_losses = train_step(models["official"], batch)
    saved = our_backbone.sample_kept_tokens
    our_backbone.sample_kept_tokens = noise_order_kept_tokens
    try:
        our_losses = train_step(models["ours"], batch)
    finally:
        our_backbone.sample_kept_tokens = saved
    ours_params = dict(models["ours"].named_parameters())
    grad_diff = max(float((ours_params[n].grad - p.grad).abs().max())
                    for n, p in models["official"].named_parameters() if p.grad is not None)
    return {"loss_max_abs_diff": max(abs(our_losses[k] - official_losses[k]) for k in official_losses),
            "grad_max_abs_diff": grad_diff,
            "grad_rel_l2": relative_l2([ours_params[n].grad for n, p in models["official"].named_parameters()
                                        if p.grad is not None],
                                       [p.grad for p in models["official"].parameters() if p.grad is not None])}


def inference_agreement(models, batch):
    dets = {side: inference(models[side], side, batch) for side in SIDES}
    out = {"detections": [[len(d) for d in dets["ours"]], [len(d) for d in dets["official"]]]}
    mine, theirs = dets["ours"][0], dets["official"][0]
    out["same_count"] = len(mine) == len(theirs)
    if len(mine) and len(theirs):
        # Match each of ours to the nearest same-class official box (ranks can swap on ties).
        dist = torch.cdist(mine.pred_boxes.tensor, theirs.pred_boxes.tensor, p=float("inf"))
        dist[mine.pred_classes[:, None] != theirs.pred_classes[None, :]] = float("inf")
        best = dist.min(dim=1)
        found = torch.isfinite(best.values)
        out["matched"] = int(found.sum())
        out["box_max_abs_diff"] = float(best.values[found].max()) if found.any() else None
        out["score_max_abs_diff"] = float((mine.scores[found] - theirs.scores[best.indices[found]]).abs().max()) \
            if found.any() else None
    return out


# ---- profile ---------------------------------------------------------------------------
class RssSampler:
    """RSS (MiB) sampled every few ms in a thread: the start, the marks, and the peak and
    when it came (seconds after the start, and after the last mark)."""

    def __init__(self, interval=0.005):
        import threading

        from d2backbones.benchmarking import rss_mb

        self.rss = rss_mb
        self.interval, self.samples, self.marks = interval, [], {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self.rss()))
            time.sleep(self.interval)

    def mark(self, name):
        self.marks[name] = (time.perf_counter(), self.rss())

    def __enter__(self):
        self.start = (time.perf_counter(), self.rss())
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self):
        t0, rss0 = self.start
        peak_t, peak = max(self.samples, key=lambda s: s[1])
        out = {"rss_start_mb": rss0, "peak_growth_mb": peak - rss0, "peak_at_s": peak_t - t0}
        for name, (t, rss) in self.marks.items():
            out[f"growth_at_{name.replace(' ', '_')}_mb"] = rss - rss0
            out[f"{name.replace(' ', '_')}_at_s"] = t - t0
        return out


class StepProfile:
    """Per-group forward seconds, recompute seconds (module forwards while backward runs:
    activation checkpointing) and MB of tensors saved for backward outside checkpoints."""

    def __init__(self, model, checkpointed):
        self.model = model
        self.checkpointed = checkpointed
        self.phase = "forward"
        self.seconds = {}
        self.saved_mb = {}
        self.stack = []
        self.starts = {}
        self.handles = []
        self._seen = set()
        modules = dict(model.named_modules())
        for name, module in modules.items():
            label = profile_group(name)
            parent_name = name.rsplit(".", 1)[0] if "." in name else ""
            parent = modules.get(parent_name)
            if label is None or (profile_group(parent_name) == label and not isinstance(parent, torch.nn.ModuleList)):
                continue  # time each group at its outermost called modules only
            self.handles.append(module.register_forward_pre_hook(partial(self._pre, label)))
            self.handles.append(module.register_forward_hook(partial(self._post, label)))

    # Forward phase only: non-reentrant checkpointing stops a recomputation early, inside
    # the module, so post-hooks do not fire for recomputed forwards.
    def _pre(self, label, module, inputs):
        if self.phase == "forward":
            self.stack.append(label)
            self.starts[id(module), len(self.stack)] = time.perf_counter()

    def _post(self, label, module, inputs, output):
        if self.phase != "forward":
            return
        start = self.starts.pop((id(module), len(self.stack)))
        self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start
        self.stack.pop()

    def _pack(self, tensor):
        # Each storage once (a conv output saved by its ReLU and by the next conv counts
        # once); parameters and buffers are not activations.
        if self.phase == "forward" and not (tensor.is_leaf and tensor.requires_grad):
            try:
                key = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes())
            except (RuntimeError, NotImplementedError):
                key = None
            if key is not None and key in self._seen:
                return tensor
            self._seen.add(key)
            label = self.stack[-1] if self.stack else "other (heads glue, losses, FPN top block)"
            nbytes = tensor.untyped_storage().nbytes() if key is not None else tensor.numel() * tensor.element_size()
            self.saved_mb[label] = self.saved_mb.get(label, 0.0) + nbytes / 2 ** 20
        return tensor

    def run(self, batch):
        from detectron2.utils.events import EventStorage

        self.model.train()
        self.model.zero_grad(set_to_none=True)
        reseed()
        sampler = RssSampler()
        with EventStorage(), sampler:
            start = time.perf_counter()
            with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t):
                total = sum(self.model(batch).values())
            forward = time.perf_counter() - start
            sampler.mark("forward end")
            self.phase = "backward"
            start = time.perf_counter()
            total.backward()
            backward = time.perf_counter() - start
        for handle in self.handles:
            handle.remove()
        memory = sampler.summary()
        groups = [label for label, _ in PROFILE_GROUPS]
        return {
            "forward_s": forward,
            "backward_s": backward,
            "forward_s_by_group": {g: self.seconds.get(g, 0.0) for g in groups},
            # What checkpointing reruns in backward: the forward of the checkpointed groups.
            "recompute_estimate_s": sum(self.seconds.get(g, 0.0) for g in self.checkpointed),
            "checkpointed_groups": list(self.checkpointed),
            "rss_timeline": memory,
            "saved_for_backward_mb_by_group": dict(sorted(self.saved_mb.items(), key=lambda kv: -kv[1])),
        }


def checkpointed_groups(model, side):
    """Profile groups that activation checkpointing recomputes on this side (training, image
    input without grad: the official code skips ConvStem stage 0, checkpoints decoder_norm)."""
    mimdet = mimdet_of(model)
    if side == "official":
        groups = []
        if mimdet.encoder.checkpointing:
            groups += [f"ConvStem stage {i} (stride {2 ** (i + 1)})" for i in (1, 2, 3)] + ["encoder blocks"]
        if mimdet.decoder.checkpointing:
            groups += ["decoder blocks", "decoder norm"]
        return groups
    groups = [f"ConvStem stage {i} (stride {2 ** (i + 1)})" for i in range(4)] \
        if mimdet.encoder.patch_embed.use_act_checkpoint else []
    if mimdet.encoder.use_act_checkpoint:
        groups.append("encoder blocks")
    if mimdet.decoder.use_act_checkpoint:
        groups.append("decoder blocks")
    return groups


def op_profile(model, batch, top=15):
    """torch.profiler self-CPU time of the top ops of one training step."""
    from detectron2.utils.events import EventStorage
    from torch.profiler import ProfilerActivity, profile

    model.train()
    model.zero_grad(set_to_none=True)
    reseed()
    with profile(activities=[ProfilerActivity.CPU]) as prof, EventStorage():
        sum(model(batch).values()).backward()
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:top]
    return [{"op": e.key, "self_cpu_s": e.self_cpu_time_total / 1e6, "calls": e.count} for e in rows]


# ---- experiments on our side (no code change; toggles of existing options) ----------------
def apply_experiment(model, experiment):
    """Checkpointing variants of ours, to size the cost of each checkpointed part."""
    mimdet = mimdet_of(model)
    if experiment in (None, "", "none"):
        return
    for part in experiment.split("+"):
        if part == "no-stem-ckpt":
            mimdet.encoder.patch_embed.use_act_checkpoint = False
        elif part == "no-decoder-ckpt":
            mimdet.decoder.use_act_checkpoint = False
        elif part == "no-encoder-ckpt":
            mimdet.encoder.use_act_checkpoint = False
        else:
            raise ValueError(f"unknown experiment {part!r}")


# ---- memory in a fresh process ----------------------------------------------------------
def memory_worker(side, ratio, input_size, batch_size, official_path, weights_path, experiment=None,
                  our_config=OUR_CONFIG):
    from d2backbones.benchmarking import peak_rss_growth_mb

    model = build_side(side, official_path, weights_path, our_config)
    set_ratio(model, side, ratio)
    if side == "ours":
        apply_experiment(model, experiment)
    batch = batch_for(input_size, batch_size)
    return peak_rss_growth_mb(lambda: train_step(model, batch))


def measure_memory(side, ratio, batch_size, args, weights_path, experiment=None):
    """One side's peak RSS growth (MiB) in a fresh interpreter (``--memory-worker``),
    which sets the same torch thread count from ``--threads``."""
    from d2backbones.benchmarking import run_worker

    worker_args = ["--memory-worker", side, ratio, "--official-path", args.official_path, "--weights", weights_path,
                   "--input-size", f"{args.input_size[0]}x{args.input_size[1]}", "--batch-sizes", batch_size,
                   "--threads", args.threads, "--our-config", args.our_config]
    if experiment:
        worker_args += ["--experiment", experiment]
    return run_worker(__file__, *worker_args)


# ---- timing ---------------------------------------------------------------------------
def time_both(calls, rounds, warmup_rounds):
    from d2backbones.benchmarking import time_alternately

    def progress(name, wall, cpu, timed):
        print(f"  {name}: {wall:.2f} s wall, {cpu:.2f} s CPU{'' if timed else ' (warm-up)'}", file=sys.stderr,
              flush=True)

    times = time_alternately(calls, rounds, warmup_rounds, on_call=progress)
    return {name: {"wall_s": times.wall_s[name], "cpu_s": times.cpu_s[name], "wall_s_all": times.wall_s_all[name]}
            for name in calls}


# ---- report ---------------------------------------------------------------------------
TABLE_HEADER = ("| mode | images | sample ratio | ours wall s | official wall s | time ours/official | ours CPU s "
                "| official CPU s | ours peak RSS growth MB | official MB | memory ours/official | agreement |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|---|")


def agreement_cell(agreement):
    if agreement is None:
        return "-"
    if "grad_rel_l2" in agreement:
        return (f"ids {'equal' if agreement['kept_ids_equal'] else 'DIFFER'}; loss rel {agreement['loss_max_rel_diff']:.1e}; "
                f"grad rel L2 {agreement['grad_rel_l2']:.1e}")
    return (f"dets {agreement['detections'][0]}/{agreement['detections'][1]}; box {agreement.get('box_max_abs_diff')}; "
            f"score {agreement.get('score_max_abs_diff')}")


def markdown_row(row):
    t, m = row.get("time", {}), row.get("memory_mb", {})

    def fmt(value, spec):
        return spec.format(value) if value is not None else "-"

    return "| " + " | ".join([
        row["mode"], str(row.get("batch_size", 1)), str(row["sample_ratio"]),
        fmt(t.get("ours", {}).get("wall_s"), "{:.2f}"), fmt(t.get("official", {}).get("wall_s"), "{:.2f}"),
        ratio_cell(t.get("ours", {}).get("wall_s"), t.get("official", {}).get("wall_s")),
        fmt(t.get("ours", {}).get("cpu_s"), "{:.2f}"), fmt(t.get("official", {}).get("cpu_s"), "{:.2f}"),
        fmt(m.get("ours"), "{:.0f}"), fmt(m.get("official"), "{:.0f}"), ratio_cell(m.get("ours"), m.get("official")),
        agreement_cell(row.get("agreement")),
    ]) + " |"


def write_report(report, path):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1, default=str)
    lines = [f"Machine: {report['machine']}. Date: {report['date']}. Command: `{report['command']}`.",
             ("not timed (--no-time)" if report["rounds"] is None
              else f"{report['rounds']} timed round(s) after {report['warmup_rounds']} warm-up") + "; "
             f"{report['threads']} thread(s); "
             f"input {report['input_size']}; activation checkpointing as the official config; BN for SyncBN.",
             "", TABLE_HEADER, *(markdown_row(row) for row in report["results"]), "", *report["targets"]]
    with open(os.path.splitext(path)[0] + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


def target_lines(rows):
    lines = []
    for row in rows:
        if row["mode"] != "train":
            continue
        t, m = row.get("time"), row.get("memory_mb")
        if t:
            r = t["ours"]["wall_s"] / t["official"]["wall_s"]
            lines.append(f"{row.get('batch_size', 1)} image(s), ratio {row['sample_ratio']}: time ours/official {r:.2f} (target <= {TARGETS['time']}: "
                         f"{verdict(r, TARGETS['time'])})")
        if m:
            r = m["ours"] / m["official"]
            lines.append(f"{row.get('batch_size', 1)} image(s), ratio {row['sample_ratio']}: peak memory growth "
                         f"ours/official {r:.2f} "
                         f"(target <= {TARGETS['memory']}: {verdict(r, TARGETS['memory'])})")
    return lines


# ---- command line ---------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-path", default=None, help="checkout of hustvl/MIMDet (skip when absent)")
    parser.add_argument("--our-config", default=OUR_CONFIG,
                        help="our side's LazyConfig, relative to the repository (e.g. the _heads_recomputed variant)")
    parser.add_argument("--input-size", type=parse_size, default=DEFAULT_INPUT_SIZE)
    parser.add_argument("--sample-ratios", "--sample-ratio", type=float, nargs="+", default=[0.5])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1], help="images per training step")
    parser.add_argument("--inference", action="store_true", help="also compare and time eval at ratio 1.0")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup-rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-time", action="store_true", help="agreement (and memory) only")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--profile", action="store_true", help="per-module profile of one step per side")
    parser.add_argument("--profile-ratio", type=float, default=0.5, help="sample ratio of the profiled step")
    parser.add_argument("--skip-train", action="store_true", help="no training rows (profile / inference only)")
    parser.add_argument("--match-token-order", action="store_true",
                        help="also run our step with the kept tokens in the official's (noise) order and compare "
                             "it to the official step exactly")
    parser.add_argument("--op-profile", action="store_true", help="torch.profiler top ops of one step per side")
    parser.add_argument("--experiments", nargs="*", default=[],
                        help="memory (and time) of ours with checkpointing toggles, e.g. no-stem-ckpt")
    parser.add_argument("--output", default="output/benchmark/mimdet_vs_official.json")
    parser.add_argument("--memory-worker", nargs=2, metavar=("SIDE", "RATIO"), help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--experiment", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if any(size < 1 for size in args.batch_sizes):
        parser.exit(2, f"mimdet_vs_official: batch sizes must be >= 1, got {args.batch_sizes}\n")
    if args.rounds < 1 or args.warmup_rounds < 0 or args.threads < 1:
        parser.exit(2, "mimdet_vs_official: need --rounds >= 1, --warmup-rounds >= 0 and --threads >= 1\n")
    if any(not 0.0 < r <= 1.0 for r in args.sample_ratios):
        parser.exit(2, f"mimdet_vs_official: sample ratios must be in (0, 1], got {args.sample_ratios}\n")
    if not os.path.isfile(os.path.join(REPO, args.our_config)):
        parser.exit(2, f"mimdet_vs_official: --our-config {args.our_config} is not a file; give a config path "
                       f"relative to the repository, e.g. {OUR_CONFIG}\n")
    return args


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if not args.official_path or not os.path.isdir(os.path.join(args.official_path, "models")):
        print(SKIP_MESSAGE if not args.official_path else
              f"mimdet_vs_official: {args.official_path} is not a MIMDet checkout (no models/); skipped")
        return None
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    torch.set_num_threads(args.threads)
    if args.memory_worker:
        side, ratio = args.memory_worker
        add_official_to_path(args.official_path)
        print(memory_worker(side, float(ratio), args.input_size, args.batch_sizes[0], args.official_path, args.weights,
                            args.experiment, args.our_config))
        return None

    from d2backbones.benchmarking import machine_description

    report = {"machine": machine_description(),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["benchmarks/mimdet_vs_official.py", *argv]),
              "rounds": None if args.no_time else args.rounds,
              "warmup_rounds": None if args.no_time else args.warmup_rounds, "threads": args.threads,
              "input_size": f"{args.input_size[0]}x{args.input_size[1]}", "results": [], "targets": [],
              "load_before": [round(v, 2) for v in os.getloadavg()]}
    workdir = tempfile.mkdtemp(prefix="mimdet_vs_official_")
    weights_path = os.path.join(workdir, "official_init.pth")
    official = build_official(args.official_path)
    torch.save({"model": shared_weights(official)}, weights_path)
    official.load_state_dict(torch.load(weights_path)["model"])
    ours = build_ours(args.our_config)
    report["weights"] = load_into_ours(ours, weights_path)
    models = {"ours": ours, "official": official}
    kept = KeptIds(models)
    batch = batch_for(args.input_size)
    print(f"machine: {report['machine']}; weights: {report['weights']}", flush=True)

    for batch_size, ratio in ([] if args.skip_train else itertools.product(args.batch_sizes, args.sample_ratios)):
        for side in SIDES:
            set_ratio(models[side], side, ratio)
        row = {"mode": "train", "batch_size": batch_size, "sample_ratio": ratio}
        train_batch = batch_for(args.input_size, batch_size)
        row["agreement"] = train_agreement(models, train_batch, kept)
        if args.match_token_order:
            row["agreement_official_token_order"] = same_order_agreement(models, train_batch)
            print(f"ratio {ratio} agreement, our tokens in the official order: "
                  f"{json.dumps(row['agreement_official_token_order'])}", flush=True)
        print(f"{batch_size} image(s), ratio {ratio} agreement: {json.dumps(row['agreement'])}", flush=True)
        if not args.no_time:
            row["time"] = time_both({side: partial(train_step, models[side], train_batch) for side in SIDES},
                                    args.rounds, args.warmup_rounds)
        if not args.no_memory:
            row["memory_mb"] = {side: measure_memory(side, ratio, batch_size, args, weights_path) for side in SIDES}
        print(markdown_row(row), flush=True)
        report["results"].append(row)
        for experiment in args.experiments:
            mem = measure_memory("ours", ratio, batch_size, args, weights_path, experiment)
            print(f"{batch_size} image(s), ratio {ratio} experiment {experiment}: ours peak RSS growth {mem:.0f} MB",
                  flush=True)
            report.setdefault("experiments", []).append({"batch_size": batch_size, "sample_ratio": ratio,
                                                         "experiment": experiment, "ours_memory_mb": mem})

    if args.profile or args.op_profile:
        ratio = args.profile_ratio
        report["profile"] = {"sample_ratio": ratio}
        for side in SIDES:
            set_ratio(models[side], side, ratio)
            entry = {}
            if args.profile:
                entry["modules"] = StepProfile(models[side], checkpointed_groups(models[side], side)).run(batch)
            if args.op_profile:
                entry["top_ops"] = op_profile(models[side], batch)
            report["profile"][side] = entry
            print(f"profile {side} (ratio {ratio}): {json.dumps(entry, indent=1)}", flush=True)

    if args.inference:
        for side in SIDES:
            set_ratio(models[side], side, args.sample_ratios[0])
            scale_classifier(models[side], CLASSIFIER_WEIGHT_SCALE)
        row = {"mode": "inference", "sample_ratio": 1.0, "agreement": inference_agreement(models, batch)}
        print(f"inference agreement: {json.dumps(row['agreement'])}", flush=True)
        if not args.no_time:
            row["time"] = time_both({side: partial(inference, models[side], side, batch) for side in SIDES},
                                    args.rounds, args.warmup_rounds)
        print(markdown_row(row), flush=True)
        report["results"].append(row)

    report["targets"] = target_lines(report["results"])
    report["load_after"] = [round(v, 2) for v in os.getloadavg()]
    print(TABLE_HEADER)
    for row in report["results"]:
        print(markdown_row(row))
    print("\n".join(report["targets"]))
    write_report(report, args.output)
    print(f"wrote {args.output} and {os.path.splitext(args.output)[0]}.md")
    return report


if __name__ == "__main__":
    main()
