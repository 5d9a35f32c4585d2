"""The ``--dataset`` argument of the analysis tools: a registered name or a COCO json to register."""
from ..data import check_dataset_available, parse_dataset_spec, register_user_dataset

__all__ = ["dataset_from_argument"]


def dataset_from_argument(argument):
    """The dataset name of ``argument``: ``NAME=ANNOTATIONS.json:IMAGE_DIR`` is registered
    as ``tools/train_net.py --dataset`` does; a plain ``NAME`` must be registered already
    (detectron2's builtin splits, the embedded ``synthetic_shapes_*``).

    Raises:
        ValueError: a malformed spec or json; KeyError: an unknown name;
        FileNotFoundError: a builtin split whose files are missing.
    """
    if "=" in argument:
        name, json_path, image_dir = parse_dataset_spec(argument)
        register_user_dataset(name, json_path, image_dir)
        return name
    check_dataset_available(argument)
    return argument
