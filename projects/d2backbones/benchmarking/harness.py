"""Build a config's detector and measure it on random data: parameters, GFLOPs, step
times and memory, as one flat record."""
import datetime
import os

import torch
from detectron2.config import instantiate
from detectron2.utils.analysis import FlopCountAnalysis
from detectron2.utils.events import EventStorage
from fvcore.nn import FlopCountAnalysis as TensorFlopCountAnalysis

from ..engine.config import load_config
from ..pretrain import ImagePretrainer
from .machine import machine_description, matmul_gflop_per_s
from .memory import peak_rss_mb, reset_peak_rss, rss_mb
from .sizes import format_size
from .synthetic import synthetic_batch
from .timing import median_time

__all__ = ["autocast", "build_model_and_optimizer", "count_flops", "enable_activation_checkpointing", "measure_config"]

AMP_DTYPES = {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def enable_activation_checkpointing(model, config_name):
    """Switch on every ``use_act_checkpoint`` flag in the model (ViT-style backbones)."""
    flagged = [module for module in model.modules() if hasattr(module, "use_act_checkpoint")]
    if not flagged:
        raise ValueError(f"{config_name}: no module has a use_act_checkpoint option, so --activation-checkpointing cannot apply")
    for module in flagged:
        module.use_act_checkpoint = True


def build_model_and_optimizer(config_file, opts=(), device="cpu", activation_checkpointing=False,
                              compile_backbone=False):
    """The config's model on ``device``, its optimizer, and its number of classes (1 when the
    model has no ``roi_heads``), after the ``key=value`` overrides ``opts``."""
    cfg = load_config(config_file, opts)
    model = instantiate(cfg.model).to(device)
    if activation_checkpointing:
        enable_activation_checkpointing(model, config_file)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    if compile_backbone:
        # Compiled in place, so detectron2 still sees the backbone's own attributes.
        model.backbone.compile()
    num_classes = cfg.model.roi_heads.num_classes if "roi_heads" in cfg.model else 1
    return model, optimizer, num_classes


def unlabeled_batch(batch_size, input_size, seed=0, device="cpu"):
    """Random uint8 images without annotations, the input of a pretraining model."""
    generator = torch.Generator().manual_seed(seed)
    height, width = input_size
    return [{"image": torch.randint(0, 256, (3, height, width), generator=generator, dtype=torch.uint8).to(device)}
            for _ in range(batch_size)]


def autocast(device, amp):
    """torch.autocast for ``amp`` ("off", "fp16" or "bf16") on ``device``'s type."""
    dtype = AMP_DTYPES[amp]
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype is not None)


def count_flops(model, image):
    """fvcore multiply-adds, in G, of the whole model and of its backbone on one (3, H, W) image."""
    model.eval()
    # fvcore traces with torch.jit, which refuses a torch.compile'd module: count the eager one.
    compiled_call = model.backbone._compiled_call_impl
    model.backbone._compiled_call_impl = None
    try:
        with torch.no_grad():
            total = FlopCountAnalysis(model, [{"image": image}]).unsupported_ops_warnings(False).total()
            images = model.preprocess_image([{"image": image}]).tensor
            backbone = TensorFlopCountAnalysis(model.backbone, (images,)).unsupported_ops_warnings(False).total()
    finally:
        model.backbone._compiled_call_impl = compiled_call
    return total / 1e9, backbone / 1e9


def measure_config(args, config_file):
    """One record of every measurement for one config; run it in a process of its own,
    so that the peak memory is this config's.

    Args:
        args (argparse.Namespace): the settings of ``tools/benchmark.py`` (see
            :func:`d2backbones.benchmarking.cli.parse_args`): opts, input_size, batch_size,
            iters, warmup, device, amp, compile, activation_checkpointing, no_infer,
            no_flops, matmul, matmul_size, name.
        config_file (str): the LazyConfig to measure.

    Returns:
        dict: a flat record (keys listed in ``tools/benchmark.py``).
    """
    torch.manual_seed(0)
    model, optimizer, num_classes = build_model_and_optimizer(
        config_file, args.opts, args.device, args.activation_checkpointing, args.compile
    )
    # A pretraining model (MAE, ...) trains on bare images and has no detector to time.
    pretraining = isinstance(model, ImagePretrainer)
    reset_peak_rss()
    rss_after_build = rss_mb()
    if pretraining:
        batch = unlabeled_batch(args.batch_size, args.input_size, device=args.device)
    else:
        batch = synthetic_batch(args.batch_size, args.input_size, num_classes, device=args.device)
    record = {
        "config": config_file,
        "name": args.name or os.path.splitext(os.path.basename(config_file))[0],
        "input_size": format_size(args.input_size),
        "batch_size": args.batch_size,
        "device": args.device,
        "amp": args.amp,
        "compile": args.compile,
        "activation_checkpointing": args.activation_checkpointing,
        "iters": args.iters,
        "warmup": args.warmup,
        "pretraining": pretraining,
        "params": sum(p.numel() for p in model.parameters()) / 1e6,
        "machine": machine_description(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if not pretraining:
        record["backbone_params"] = sum(p.numel() for p in model.backbone.parameters()) / 1e6
    scaler = torch.amp.GradScaler(enabled=args.amp == "fp16" and args.device.startswith("cuda"))

    def train_step():
        with autocast(args.device, args.amp):
            losses = sum(model(batch).values())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses).backward()
        scaler.step(optimizer)
        scaler.update()
        record["last_train_loss"] = losses.item()

    if args.iters > 0:
        model.train()
        with EventStorage():  # detectron2's losses log into one
            record["train_s_per_iter"] = median_time(train_step, args.iters, args.warmup, args.device)
        record["train_images_per_s"] = args.batch_size / record["train_s_per_iter"]

    if args.iters > 0 and not args.no_infer and not pretraining:
        inputs = [{key: item[key] for key in ("image", "height", "width")} for item in batch]
        model.eval()

        def infer():
            with torch.no_grad(), autocast(args.device, args.amp):
                model(inputs)

        record["infer_s_per_image"] = median_time(infer, args.iters, args.warmup, args.device) / args.batch_size
        with torch.no_grad():
            images = model.preprocess_image(inputs).tensor

        def infer_backbone():
            with torch.no_grad(), autocast(args.device, args.amp):
                model.backbone(images)

        record["backbone_infer_s_per_image"] = (
            median_time(infer_backbone, args.iters, args.warmup, args.device) / args.batch_size
        )
    record["peak_rss_mb"] = peak_rss_mb()
    record["rss_after_build_mb"] = rss_after_build
    record["peak_rss_growth_mb"] = record["peak_rss_mb"] - rss_after_build
    if args.device.startswith("cuda"):
        record["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20

    if not args.no_flops and not pretraining:
        # After the timings: tracing allocates too, and must not count in the peak above.
        record["gflops"], record["backbone_gflops"] = count_flops(model, batch[0]["image"])
    if args.matmul:
        record["matmul_gflop_per_s"] = matmul_gflop_per_s(args.matmul_size, device=args.device)
        if "backbone_gflops" in record and "backbone_infer_s_per_image" in record:
            achieved = 2 * record["backbone_gflops"] / record["backbone_infer_s_per_image"]
            record["backbone_achieved_gflop_per_s"] = achieved
            record["backbone_fraction_of_matmul"] = achieved / record["matmul_gflop_per_s"]
    return record
