"""The LazyConfig train / eval flow of detectron2's ``lazyconfig_train_net``,
on detectron2's trainer, hooks, checkpointer and evaluators, and usable on CPU."""
import copy
import inspect
import json
import logging
import os
import subprocess
import time

import torch
from detectron2.config import instantiate
from detectron2.engine import default_writers, hooks
from detectron2.engine.defaults import create_ddp_model
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.registry import locate

from ..checkpoint import load_checkpoint, zoo_entry_for
from ..inference.results import finite_only, json_safe, summarize
from ..inference.mask_paste import with_batch_pasting
from ..inference.tta import maybe_with_tta
from .checkpoint import AtomicCheckpointer, AtomicFile, trim_metrics_after
from .data_loading import build_test_loader, build_train_loader
from .guards import GuardedAMPTrainer, GuardedSimpleTrainer, NonFiniteLossGuard
from .model_ema import ModelEmaHook, build_model_ema, load_ema_weights
from .reproducibility import MemoryMonitor, MetricHistoryKeeper, StepSeeder, check_replicas_identical

logger = logging.getLogger("d2backbones")


def resolve_device(cfg):
    """Use ``train.device``, or the CPU (logged) when it asks for CUDA and none exists."""
    device = cfg.train.get("device", "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        logger.info("No CUDA device found: training and evaluating on the CPU.")
        device = "cpu"
    cfg.train.device = device
    return device


def wrap_ddp(cfg, model):
    """detectron2's ``create_ddp_model``, with gloo-compatible settings on the CPU."""
    ddp_kwargs = dict(cfg.train.get("ddp", {}))
    if cfg.train.device == "cpu" and comm.get_world_size() > 1:
        ddp_kwargs["device_ids"] = None
        ddp_kwargs["fp16_compression"] = False
    return create_ddp_model(model, **ddp_kwargs)


def evaluator_config(cfg):
    """``dataloader.evaluator``, writing into ``<train.output_dir>/inference`` unless it names
    a folder: detectron2's evaluators then keep their predictions (COCO's
    ``coco_instances_results.json``, for ``tools/analyze_results.py``), and can evaluate a
    dataset that has no COCO json of its own (e.g. a ``name@fraction`` subset)."""
    evaluator = cfg.dataloader.evaluator
    target = evaluator.get("_target_")
    target = locate(target) if isinstance(target, str) else target
    if target is None or evaluator.get("output_dir") is not None:
        return evaluator
    if "output_dir" in inspect.signature(target).parameters:
        evaluator = copy.deepcopy(evaluator)
        evaluator.output_dir = os.path.join(cfg.train.output_dir, "inference")
    return evaluator


def do_test(cfg, model):
    """Evaluate on ``dataloader.test`` with ``dataloader.evaluator``; {} if none is set
    (``dataloader.evaluator=null`` turns evaluation off)."""
    if cfg.dataloader.get("evaluator") is None:
        return {}
    # The detector's own outputs, with each image's masks pasted in one go.
    model = with_batch_pasting(maybe_with_tta(cfg, model))
    results = inference_on_dataset(model, build_test_loader(cfg), instantiate(evaluator_config(cfg)))
    if comm.is_main_process():
        print_csv_format(results)
    return results


def build_trainer(cfg, model, loader, optimizer):
    """detectron2's AMPTrainer when AMP is on and CUDA is there, SimpleTrainer otherwise
    (both with the trainer side of :class:`NonFiniteLossGuard`)."""
    if cfg.train.amp.enabled and cfg.train.device == "cpu":
        logger.info("train.amp.enabled is ignored on the CPU (detectron2's AMPTrainer needs CUDA).")
        return GuardedSimpleTrainer(model, loader, optimizer)
    return (GuardedAMPTrainer if cfg.train.amp.enabled else GuardedSimpleTrainer)(model, loader, optimizer)


def run_seed(cfg):
    """``train.seed``, or one drawn at random (the same on every rank) when it is negative."""
    seed = cfg.train.get("seed", -1)
    return seed if seed >= 0 else comm.shared_random_seed()


def do_train(cfg, resume=False):
    """Train ``cfg.model``; returns the results of the final evaluation."""
    model = instantiate(cfg.model)
    logger.info("Model:\n%s", model)
    model.to(cfg.train.device)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    seeder = StepSeeder(run_seed(cfg))
    loader = build_train_loader(cfg, seeder.seed, strict=cfg.train.get("strict_data", False))

    # Before DDP wraps the model: the average holds the plain model's keys.
    ema = build_model_ema(cfg, model)
    model = wrap_ddp(cfg, model)
    trainer = build_trainer(cfg, model, loader, optimizer)
    checkpointer = AtomicCheckpointer(model, cfg.train.output_dir, trainer=trainer)
    if ema is not None:
        checkpointer.add_checkpointable("model_ema", ema)
    evaluated = ema.module if ema is not None and cfg.train.model_ema.get("use_for_eval", False) else model
    final_results = {}

    def evaluate():
        final_results.clear()
        final_results.update(do_test(cfg, evaluated))
        # To metrics.json through the EvalHook: NaN (e.g. APl without large objects) is not JSON.
        return finite_only(final_results)

    trainer.register_hooks(
        [
            seeder,
            NonFiniteLossGuard(cfg.train.get("non_finite_loss", "stop"), checkpointer),
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            ModelEmaHook(ema) if ema is not None else None,
            MemoryMonitor(cfg.train.log_period),
            MetricHistoryKeeper(),
            hooks.EvalHook(cfg.train.eval_period, evaluate),
            hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter), period=cfg.train.log_period)
            if comm.is_main_process()
            else None,
            # Last, so that the metrics of the steps a checkpoint holds are on disk before it:
            # a resume from it then rewrites nothing and misses nothing.
            hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer) if comm.is_main_process() else None,
        ]
    )
    if resume and checkpointer.has_checkpoint():
        checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=True)
    elif cfg.train.init_checkpoint:
        # Any source and format, with the load table and the backbone checks.
        load_checkpoint(model, cfg.train.init_checkpoint)
    # A resumed checkpoint stores the iteration that had just finished.
    start_iter = trainer.iter + 1 if resume and checkpointer.has_checkpoint() else 0
    prepare_output_for(checkpointer, start_iter)
    if hasattr(loader, "start_iter"):
        loader.seed, loader.start_iter = seeder.seed, start_iter
    trainer.train(start_iter, cfg.train.max_iter)
    if hasattr(loader, "report"):
        logger.info("Data: %s", loader.report.summary())
    check_replicas_identical(model)
    return final_results


def prepare_output_for(checkpointer, start_iter):
    """Clear what a killed run left behind: temporary files, and metrics after the
    checkpoint this run starts from (they will be written again)."""
    if comm.is_main_process():
        checkpointer.remove_stale_temporaries()
        trim_metrics_after(os.path.join(checkpointer.save_dir, "metrics.json"), start_iter - 1)
    comm.synchronize()


def do_eval_only(cfg):
    """Load ``train.init_checkpoint`` and evaluate; returns the results."""
    model = instantiate(cfg.model)
    model.to(cfg.train.device)
    model = wrap_ddp(cfg, model)
    if cfg.train.init_checkpoint and cfg.train.get("model_ema", {}).get("use_for_eval", False):
        load_ema_weights(model, cfg.train.init_checkpoint)
    elif cfg.train.init_checkpoint:
        load_checkpoint(model, cfg.train.init_checkpoint)
    else:
        logger.warning("train.init_checkpoint is empty: evaluating a randomly initialised model.")
    return do_test(cfg, model)


def git_revision():
    """The source tree's git revision, or None outside a git checkout."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=os.path.dirname(__file__), capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def write_results(cfg, results, config_file, seconds):
    """Write ``results.json`` to the output dir: AP per task, a summary (AP, AP50,
    AP75, APs/APm/APl, and APr/APc/APf for LVIS), config, zoo name and published
    AP when the checkpoint is a zoo entry, revision and timing. NaN becomes null."""
    path = os.path.join(cfg.train.output_dir, "results.json")
    zoo_entry = zoo_entry_for(cfg.train.init_checkpoint)
    record = {
        "config_file": config_file,
        "init_checkpoint": cfg.train.init_checkpoint,
        "zoo_name": zoo_entry.name if zoo_entry else None,
        "published": {"kind": zoo_entry.kind, "box_ap": zoo_entry.box_ap, "mask_ap": zoo_entry.mask_ap}
        if zoo_entry
        else None,
        "max_iter": cfg.train.max_iter,
        "summary": summarize(results),
        "results": json_safe(results),
        "git_revision": git_revision(),
        "device": cfg.train.device,
        "seconds": round(seconds, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    os.makedirs(cfg.train.output_dir, exist_ok=True)
    with AtomicFile(path, "w") as f:
        json.dump(record, f, indent=2, allow_nan=False)
    return path
