"""Command line of ``tools/train_net.py``: detectron2's flags plus ``--dataset``."""
import logging
import sys
import time

from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.utils import comm

from ..data import parse_dataset_spec, register_user_dataset
from .config import load_config
from .datasets import adapt_model_to_data, prepare_datasets
from .errors import UsageError
from .train_loop import do_eval_only, do_train, resolve_device, write_results

logger = logging.getLogger("d2backbones")

# Errors from reading the user's input: shown as one line, not a traceback.
INPUT_ERRORS = (UsageError, ValueError, FileNotFoundError, KeyError)


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
    return parser


def setup(args):
    """Register datasets, load the config with its overrides, and fit it to the data."""
    for spec in args.dataset:
        register_user_dataset(*parse_dataset_spec(spec))
    cfg = load_config(args.config_file, args.opts)
    train_names, _ = prepare_datasets(cfg)
    adapt_model_to_data(cfg, train_names, args.opts)
    resolve_device(cfg)
    return cfg


def main(args):
    """Per-process entry point (run by ``launch`` in every worker)."""
    cfg = setup(args)
    default_setup(cfg, args)
    start = time.perf_counter()
    if args.eval_only:
        results = do_eval_only(cfg)
    else:
        results = do_train(cfg, resume=args.resume)
    if comm.is_main_process() and results:
        path = write_results(cfg, results, args.config_file, time.perf_counter() - start)
        logger.info("Results written to %s", path)
    return results


def run(argv=None):
    """Parse ``argv``, check the input up front, then launch one process per GPU."""
    args = build_parser().parse_args(argv)
    try:
        setup(args)
    except INPUT_ERRORS as error:
        message = error.args[0] if error.args else str(error)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
