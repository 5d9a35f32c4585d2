"""The LazyConfig train / eval flow of detectron2's ``lazyconfig_train_net``,
on detectron2's trainer, hooks, checkpointer and evaluators, and usable on CPU."""
import json
import logging
import os
import subprocess
import time

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import instantiate
from detectron2.engine import AMPTrainer, SimpleTrainer, default_writers, hooks
from detectron2.engine.defaults import create_ddp_model
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm

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


def do_test(cfg, model):
    """Evaluate on ``dataloader.test`` with ``dataloader.evaluator``; {} if none is set."""
    if "evaluator" not in cfg.dataloader:
        return {}
    results = inference_on_dataset(model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator))
    if comm.is_main_process():
        print_csv_format(results)
    return results


def build_trainer(cfg, model, loader, optimizer):
    """AMPTrainer when AMP is on and CUDA is there, SimpleTrainer otherwise."""
    if cfg.train.amp.enabled and cfg.train.device == "cpu":
        logger.info("train.amp.enabled is ignored on the CPU (detectron2's AMPTrainer needs CUDA).")
        return SimpleTrainer(model, loader, optimizer)
    return (AMPTrainer if cfg.train.amp.enabled else SimpleTrainer)(model, loader, optimizer)


def do_train(cfg, resume=False):
    """Train ``cfg.model``; returns the results of the final evaluation."""
    model = instantiate(cfg.model)
    logger.info("Model:\n%s", model)
    model.to(cfg.train.device)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    loader = instantiate(cfg.dataloader.train)

    model = wrap_ddp(cfg, model)
    trainer = build_trainer(cfg, model, loader, optimizer)
    checkpointer = DetectionCheckpointer(model, cfg.train.output_dir, trainer=trainer)
    final_results = {}

    def evaluate():
        final_results.clear()
        final_results.update(do_test(cfg, model))
        return final_results

    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer) if comm.is_main_process() else None,
            hooks.EvalHook(cfg.train.eval_period, evaluate),
            hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter), period=cfg.train.log_period)
            if comm.is_main_process()
            else None,
        ]
    )
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=resume)
    # A resumed checkpoint stores the iteration that had just finished.
    start_iter = trainer.iter + 1 if resume and checkpointer.has_checkpoint() else 0
    trainer.train(start_iter, cfg.train.max_iter)
    return final_results


def do_eval_only(cfg):
    """Load ``train.init_checkpoint`` and evaluate; returns the results."""
    model = instantiate(cfg.model)
    model.to(cfg.train.device)
    model = wrap_ddp(cfg, model)
    DetectionCheckpointer(model).load(cfg.train.init_checkpoint)
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
    """Write ``results.json`` (AP per task, config, revision, timing) to the output dir."""
    path = os.path.join(cfg.train.output_dir, "results.json")
    record = {
        "config_file": config_file,
        "init_checkpoint": cfg.train.init_checkpoint,
        "max_iter": cfg.train.max_iter,
        "results": results,
        "git_revision": git_revision(),
        "seconds": round(seconds, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    os.makedirs(cfg.train.output_dir, exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=2)
    os.replace(path + ".tmp", path)
    return path
