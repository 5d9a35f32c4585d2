"""The train / eval flow behind ``tools/train_net.py``."""
from .checkpoint import AtomicCheckpointer
from .config import apply_override, check_override_key, load_config
from .datasets import adapt_model_to_data, prepare_datasets
from .errors import TrainingStopped, UsageError
from .guards import NonFiniteLossError
from .train_loop import do_eval_only, do_test, do_train, resolve_device, write_results

__all__ = [
    "AtomicCheckpointer",
    "NonFiniteLossError",
    "TrainingStopped",
    "UsageError",
    "adapt_model_to_data",
    "apply_override",
    "check_override_key",
    "do_eval_only",
    "do_test",
    "do_train",
    "load_config",
    "prepare_datasets",
    "resolve_device",
    "write_results",
]
