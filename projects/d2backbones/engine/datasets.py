"""Making the datasets a config names available before its loaders are built."""
from detectron2.data import MetadataCatalog
from omegaconf import ListConfig

from ..data import check_dataset_available, register_subsets, register_synthetic_pools


def dataset_names(loader_cfg):
    """Dataset names of a train/test loader config, as a list."""
    names = loader_cfg.dataset.names
    return list(names) if isinstance(names, (list, tuple, ListConfig)) else [names]


def prepare_datasets(cfg):
    """Register the synthetic pools and ``name@fraction`` subsets a config names, and
    check every dataset is there (the embedded ``synthetic_shapes_*`` splits are
    registered at import, see :mod:`d2backbones.data.builtin`).

    Returns the train and test dataset names (no test names for a config without
    ``dataloader.test``, such as a pretraining one).
    """
    train_names = dataset_names(cfg.dataloader.train)
    test_names = dataset_names(cfg.dataloader.test) if cfg.dataloader.get("test") is not None else []
    names = train_names + test_names
    register_synthetic_pools(names)
    register_subsets(names)
    for name in names:
        check_dataset_available(name)
    return train_names, test_names


def adapt_model_to_data(cfg, train_names, user_overrides):
    """Fit the class count and the mask branch to the training data.

    ``model.roi_heads.num_classes`` follows the data's categories unless the user
    set it; box-only data (no ``segmentation``) turns the mask head off instead of
    failing on missing masks.
    """
    metadata = MetadataCatalog.get(train_names[0])
    overridden = {o.partition("=")[0] for o in user_overrides}
    classes = metadata.get("thing_classes", None)
    roi_heads = cfg.model.get("roi_heads")
    if roi_heads is None:
        return
    if classes and "model.roi_heads.num_classes" not in overridden:
        roi_heads.num_classes = len(classes)
    # One mask head, or one per cascade stage (MMDetCascadeROIHeads).
    mask_head_keys = [key for key in ("mask_head", "mask_heads") if roi_heads.get(key) is not None]
    if not metadata.get("has_masks", True) and mask_head_keys:
        roi_heads.mask_in_features = None
        roi_heads.mask_pooler = None
        for key in mask_head_keys:
            roi_heads[key] = None
        cfg.dataloader.train.mapper.use_instance_mask = False
        # recompute_boxes derives the cropped boxes from the masks, which box-only data lacks.
        cfg.dataloader.train.mapper.recompute_boxes = False
        if "evaluator" in cfg.dataloader and "tasks" not in cfg.dataloader.evaluator:
            cfg.dataloader.evaluator.tasks = ("bbox",)
