"""Command line of ``tools/train_net.py``: detectron2's flags plus ``--dataset``, ``--unlabeled`` and ``--strict-data``."""
import logging
import sys
import time

import torch
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..checkpoint.loader import read_state_dict
from ..checkpoint.safe_load import CheckpointError
from ..data import parse_dataset_spec, parse_unlabeled_spec, register_unlabeled_folder, register_user_dataset
from ..data.robust_images import BadImageError
from .checkpoint import AtomicCheckpointer
from .config import load_config
from .datasets import adapt_model_to_data, prepare_datasets
from .errors import TrainingStopped, UsageError
from .train_loop import do_eval_only, do_train, resolve_device, write_results

logger = logging.getLogger("d2backbones")

# Errors from reading the user's input: shown as one line, not a traceback (CheckpointError
# is a ValueError; it is also caught in the workers, for what only the model can reveal).
INPUT_ERRORS = (UsageError, ValueError, FileNotFoundError, KeyError)
# Training that stops on purpose: one line on stderr and exit status 1.
STOP_ERRORS = (TrainingStopped, BadImageError)


def build_parser():
    parser = default_argument_parser(
        epilog="Example: tools/train_net.py --config-file configs/demo/vitdet_tiny.py train.max_iter=100"
    )
    parser.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="NAME=ANNOTATIONS.json:IMAGE_DIR",
        help="register a COCO-format dataset under NAME (repeatable); select it with "
        "dataloader.train.dataset.names=NAME / dataloader.test.dataset.names=NAME",
    )
    parser.add_argument(
        "--unlabeled",
        action="append",
        default=[],
        metavar="NAME=IMAGE_DIR",
        help="register every image under IMAGE_DIR (recursively) as an unlabeled dataset NAME for "
        "pretraining (repeatable); select it with dataloader.train.dataset.names=NAME",
    )
    parser.add_argument(
        "--strict-data",
        action="store_true",
        help="stop at the first unreadable image instead of skipping it (same as train.strict_data=True)",
    )
    return parser


def register_datasets(args, cfg=None):
    """Register the ``--dataset`` and ``--unlabeled`` datasets, and the embedded one if ``cfg`` uses it.

    Returns the train and test dataset names of ``cfg`` (None without one)."""
    for spec in args.dataset:
        register_user_dataset(*parse_dataset_spec(spec))
    for spec in getattr(args, "unlabeled", []):
        register_unlabeled_folder(*parse_unlabeled_spec(spec))
    return prepare_datasets(cfg) if cfg is not None else None


def check_init_checkpoint(cfg, args):
    """Read ``train.init_checkpoint`` and check it (readable, safe, finite weights) before
    any model is built or file written, so that a bad one ends the command at once.

    Skipped when ``--resume`` continues from a checkpoint of the output directory: the
    run then does not use ``train.init_checkpoint`` (as in :func:`do_train`)."""
    if not cfg.train.init_checkpoint:
        return
    if args.resume and not args.eval_only and AtomicCheckpointer(torch.nn.Module(), cfg.train.output_dir).has_checkpoint():
        return
    read_state_dict(cfg.train.init_checkpoint)


def setup(args):
    """Register datasets, load the config with its overrides, check the data and the
    initial checkpoint (the data first: it is cheap and needs no download), and fit
    the config to the data."""
    register_datasets(args)
    cfg = load_config(args.config_file, args.opts)
    if getattr(args, "strict_data", False):
        cfg.train.strict_data = True
    train_names, _ = prepare_datasets(cfg)
    check_init_checkpoint(cfg, args)
    adapt_model_to_data(cfg, train_names, args.opts)
    resolve_device(cfg)
    return cfg


def main(args, cfg=None):
    """Per-process entry point (run by ``launch`` in every worker).

    ``cfg`` is the config :func:`setup` made in the launching process; a worker
    process then only registers the datasets it names. Without one, set up here.
    """
    if cfg is None:
        cfg = setup(args)
    else:
        register_datasets(args, cfg)
    default_setup(cfg, args)
    # This package's messages (resume, skipped images, weight checks) beside detectron2's.
    setup_logger(cfg.train.output_dir, distributed_rank=comm.get_rank(), name="d2backbones", abbrev_name="d2b")
    start = time.perf_counter()
    try:
        results = do_eval_only(cfg) if args.eval_only else do_train(cfg, resume=args.resume)
    except STOP_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except CheckpointError as error:
        # A checkpoint that does not fit the model (shapes, backbone keys, format).
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if comm.is_main_process() and results:
        path = write_results(cfg, results, args.config_file, time.perf_counter() - start)
        logger.info("Results written to %s", path)
    if comm.get_world_size() > 1:
        # Ranks leave together and close the process group before the interpreter exits:
        # a rank that exits while a peer's gloo threads still talk to it can abort
        # ("terminate called without an active exception"), seen once in CI.
        comm.synchronize()
        torch.distributed.destroy_process_group()
    return results


def setup_or_exit(args):
    """:func:`setup`, with bad input reported as one line on stderr (exit status 2)."""
    try:
        return setup(args)
    except INPUT_ERRORS as error:
        message = error.args[0] if error.args else str(error)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def run(argv=None):
    """Parse ``argv``, check the input up front, then launch one process per GPU."""
    args = build_parser().parse_args(argv)
    cfg = setup_or_exit(args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args, cfg),
    )
