"""Shared fixtures and helpers: small generated datasets so training tests need no
download, and the small pieces several test files use (import them with
``from conftest import ...``)."""
import contextlib
import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import LazyConfig, get_cfg, instantiate
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY

from d2backbones.checkpoint import unwrap_state_dict
from d2backbones.data import generate_synthetic_shapes
from d2backbones.engine import cli
from d2backbones.utils import temporarily_set

DEMO_CONFIG = "configs/demo/vitdet_tiny.py"
MICRO_CONFIG = "configs/demo/vitdet_micro.py"
BACKBONE = "backbone.bottom_up."
# The per-stage output norms that ConvNeXt and Swin add for detection: no
# classification checkpoint has them.
OUTPUT_NORMS = {f"{BACKBONE}norm{i}.{p}" for i in range(4) for p in ("weight", "bias")}


def _share_the_cores_between_workers():
    """Under pytest-xdist (``make test`` runs two workers), give each worker its share of
    the cores, for its own torch and for the processes its tests start: two workers
    with a thread per core each would wait on each other's threads most of the time."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


_share_the_cores_between_workers()


def _expected_minutes(item):
    """``N`` for ``@pytest.mark.slow(minutes=N)``, 1 for a bare ``slow``, 0 for the rest."""
    marker = item.get_closest_marker("slow")
    return 0 if marker is None else marker.kwargs.get("minutes", 1)


def pytest_collection_modifyitems(items):
    """Order the suite for ``make test``'s scheduler, pytest-xdist's ``--dist worksteal``:
    each worker is first sent a contiguous share of this order, and a worker that runs
    out takes the tail of another's queue. So the longest test goes first (it starts at
    once on the first worker, whose other tests can then be taken from it), and the
    other slow tests go last (the end of the second worker's share, behind no long
    test). Under ``--dist load`` (one test per worker in turn) the slow tests would queue
    behind the longest one instead."""
    if not items:
        return
    longest = max(items, key=_expected_minutes)
    rest = sorted((item for item in items if item is not longest), key=_expected_minutes)
    items[:] = [longest, *rest]


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """One torch thread for the test (``pytestmark = pytest.mark.usefixtures("one_thread")``).

    The models here are tiny: on a shared 2-core machine a second OpenMP thread mostly
    waits for a busy core (measured: 0.4 s vs 3-4 s per training step), as in the
    subprocesses that run with OMP_NUM_THREADS=1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory):
    """A 32-image train and 12-image val split of the synthetic shapes, as
    ``{"train": (json, image_dir), "val": (json, image_dir)}``."""
    root = tmp_path_factory.mktemp("tiny_shapes")
    return {
        "train": generate_synthetic_shapes(str(root), "train", 32, 128, seed=10),
        "val": generate_synthetic_shapes(str(root), "val", 12, 128, seed=11),
    }


@pytest.fixture(scope="session")
def box_only_shapes(tiny_shapes, tmp_path_factory):
    """The tiny train split with every ``segmentation`` removed: (json, image_dir)."""
    json_path, image_dir = tiny_shapes["train"]
    with open(json_path) as f:
        coco = json.load(f)
    for annotation in coco["annotations"]:
        annotation.pop("segmentation")
    out = tmp_path_factory.mktemp("box_only") / "annotations.json"
    out.write_text(json.dumps(coco))
    return str(out), image_dir


def dataset_flags(name, split):
    """``--dataset NAME=json:dir`` for a (json, image_dir) pair."""
    return ["--dataset", f"{name}={split[0]}:{split[1]}"]


@pytest.fixture(scope="session")
def two_shapes(tmp_path_factory):
    """Two synthetic images, seen again and again by a short run: (json, image_dir)."""
    return generate_synthetic_shapes(str(tmp_path_factory.mktemp("two_shapes")), "train", 2, 128, seed=12)


def training_args(config, split, output_dir, iterations=20):
    """A run of a demo config on ``split``: batch 2, fewer RoIs, no evaluation."""
    name = f"two_shapes_{Path(config).stem}"
    return [
        "--config-file", config,
        *dataset_flags(name, split),
        f"dataloader.train.dataset.names={name}",
        f"dataloader.test.dataset.names={name}",
        f"train.output_dir={output_dir}",
        "dataloader.train.total_batch_size=2",
        "dataloader.train.num_workers=0",
        "model.roi_heads.batch_size_per_image=32",
        f"train.max_iter={iterations}",
        "train.eval_period=0",
        "dataloader.evaluator=null",
        "train.log_period=1",
        "optimizer.lr=1e-3",
        "lr_multiplier.warmup_length=0.1",
    ]


def train_briefly(config, split, output_dir, iterations=20):
    """``tools/train_net.py`` in this process with :func:`training_args`."""
    cli.main(cli.build_parser().parse_args(training_args(config, split, output_dir, iterations)))


def read_metrics(output_dir):
    """The records of ``output_dir/metrics.json``, one dict a line."""
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [json.loads(line) for line in f]


def assert_loss_fell(output_dir):
    """The mean of the last 5 total losses is below 0.8x the mean of the first 5."""
    losses = [r["total_loss"] for r in read_metrics(output_dir) if "total_loss" in r]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)


def cli_error_line(argv, capsys):
    """The one stderr line with which ``tools/train_net.py ARGV`` exits with status 2."""
    with pytest.raises(SystemExit) as exit_info:
        cli.run(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def load_script(path):
    """The script at ``path`` (``tools/``, ``benchmarks/``: scripts, not a package) as a module."""
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_tool(name):
    """``tools/NAME.py`` as a module."""
    return load_script(f"tools/{name}.py")


def num_params(module):
    return sum(p.numel() for p in module.parameters())


def max_rel_err(actual, expected):
    """max |actual - expected| over max |expected|, as a float."""
    return ((actual - expected).abs().max() / expected.abs().max()).item()


@contextlib.contextmanager
def meta_device():
    """Build modules without allocating or initializing weights.

    Both ViTs read their drop-path rates back from ``torch.linspace(...).tolist()``,
    which a meta tensor cannot do, so that one call stays on the CPU.
    """
    linspace = torch.linspace
    with torch.device("meta"), temporarily_set(
        torch, "linspace", lambda *args, **kwargs: linspace(*args, **{**kwargs, "device": "cpu"})
    ):
        yield


def meta_param_count(config_path):
    """The parameter count of a LazyConfig's ``model``, built on the meta device."""
    with meta_device():
        model = instantiate(LazyConfig.load(str(config_path)).model)
    return num_params(model)


def yacs_fpn_backbone(add_config, builder_name):
    """The FPN backbone that ``BACKBONE_REGISTRY[builder_name]`` builds on the meta device
    from detectron2's default yacs config plus ``add_config``, with res2-res5 as inputs."""
    cfg = get_cfg()
    add_config(cfg)
    cfg.MODEL.RESNETS.OUT_FEATURES = cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    with meta_device():
        return BACKBONE_REGISTRY.get(builder_name)(cfg, ShapeSpec(channels=3))


def act_checkpoint_pair(build):
    """``build()`` and ``build(use_act_checkpoint=True)`` with the same weights, in train mode."""
    plain = build().train()
    checkpointed = build(use_act_checkpoint=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    return plain, checkpointed


def feature_grads(models, image, parameter):
    """The gradient of ``parameter`` (a dotted name) in each of ``models`` after
    backpropagating the sum of squares of every output feature map of ``image``."""
    grads = []
    for model in models:
        sum(f.square().sum() for f in model(image).values()).backward()
        grads.append(model.get_parameter(parameter).grad)
    return grads


def saved_and_read_back(content, path):
    """``content`` through ``torch.save`` to ``path`` and back, unwrapped to a state dict."""
    torch.save(content, path)
    return unwrap_state_dict(torch.load(path))


def load_classification_weights(detector, converted):
    """Load ``converted`` into ``detector`` (not strict) and return the detector's state
    dict, after checking that no key was unexpected and only :data:`OUTPUT_NORMS` were
    missing from the backbone."""
    result = detector.load_state_dict(converted, strict=False)
    assert not result.unexpected_keys
    assert {k for k in result.missing_keys if k.startswith(BACKBONE)} == OUTPUT_NORMS
    return detector.state_dict()


def detector_backbone(model_cfg):
    """The backbone of a detector config, under the detector's key names (``backbone.*``).
    The heads are left out: converters pass their keys through, and they take most of a
    detector's construction time."""
    detector = torch.nn.Module()
    detector.backbone = instantiate(model_cfg.backbone)
    return detector


def vit_block_state(prefix, dim):
    """Random weights of one timm/MAE ViT block of width ``dim``, keys under ``prefix``."""
    shapes = {
        "norm1.weight": (dim,), "norm1.bias": (dim,),
        "attn.qkv.weight": (3 * dim, dim), "attn.qkv.bias": (3 * dim,),
        "attn.proj.weight": (dim, dim), "attn.proj.bias": (dim,),
        "norm2.weight": (dim,), "norm2.bias": (dim,),
        "mlp.fc1.weight": (4 * dim, dim), "mlp.fc1.bias": (4 * dim,),
        "mlp.fc2.weight": (dim, 4 * dim), "mlp.fc2.bias": (dim,),
    }
    return {prefix + k: torch.randn(shape) for k, shape in shapes.items()}


class RecordingCheckpointer(DetectionCheckpointer):
    """Keeps the incompatible keys that DetectionCheckpointer only logs, as ``incompatible``."""

    def _load_model(self, checkpoint):
        self.incompatible = super()._load_model(checkpoint)
        return self.incompatible


# ---- a tiny LVIS-format set -------------------------------------------------------


def write_lvis_json(path, images, annotations, categories, split):
    """Write an LVIS v1 annotation file; returns ``path`` as a string.

    ``images`` and ``annotations`` are COCO's (polygon segmentations only, as in
    LVIS), ``categories`` are ``(id, name, frequency)``. Each image's ``coco_url``
    ends in ``SPLIT/FILE_NAME``: detectron2's ``load_lvis_json`` reads the image
    at ``IMAGE_ROOT + SPLIT/FILE_NAME``.
    """
    images = [
        {**image, "coco_url": f"http://images.test/{split}/{image['file_name']}",
         "neg_category_ids": [], "not_exhaustive_category_ids": []}
        for image in images
    ]
    counts = {c: [a["image_id"] for a in annotations if a["category_id"] == c] for c, _, _ in categories}
    categories = [
        {"id": c, "name": name, "frequency": frequency, "synset": name, "synonyms": [name], "def": name,
         "image_count": len(set(counts[c])), "instance_count": len(counts[c])}
        for c, name, frequency in categories
    ]
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories,
                   "info": {}, "licenses": []}, f)
    return str(path)


def lvis_from_coco(coco_split, image_root, split, num_images, frequencies):
    """The first ``num_images`` images of a COCO ``(json, image_dir)`` split as an LVIS
    split: the images copied to ``image_root/split/``, RLE masks turned into
    polygons, category ``k`` given ``frequencies[k]``. Returns the json path."""
    import shutil

    from detectron2.utils.visualizer import GenericMask

    with open(coco_split[0]) as f:
        coco = json.load(f)
    images = coco["images"][:num_images]
    kept = {image["id"] for image in images}
    annotations = []
    for annotation in coco["annotations"]:
        if annotation["image_id"] in kept:
            image = next(i for i in images if i["id"] == annotation["image_id"])
            mask = GenericMask(annotation["segmentation"], image["height"], image["width"])
            polygons = [p.tolist() for p in mask.polygons if len(p) >= 6]
            annotations.append({**annotation, "segmentation": polygons})
    os.makedirs(os.path.join(image_root, split))
    for image in images:
        shutil.copy(os.path.join(coco_split[1], image["file_name"]), os.path.join(image_root, split))
    categories = [(c["id"], c["name"], f) for c, f in zip(coco["categories"], frequencies)]
    return write_lvis_json(os.path.join(image_root, f"lvis_{split}.json"), images, annotations, categories, split)


@pytest.fixture(scope="session")
def tiny_lvis_shapes(tiny_shapes, tmp_path_factory):
    """8 train and 4 val images of ``tiny_shapes`` as an LVIS v1 set, train image 3
    unreadable: ``{"train": json, "val": json, "image_root": str, "bad_image": path}``."""
    root = str(tmp_path_factory.mktemp("tiny_lvis_shapes")) + os.sep
    frequencies = ("f", "c", "r", "f")
    lvis = {
        "train": lvis_from_coco(tiny_shapes["train"], root, "train2017", 8, frequencies),
        "val": lvis_from_coco(tiny_shapes["val"], root, "val2017", 4, frequencies),
        "image_root": root,
    }
    with open(lvis["train"]) as f:
        bad_image = os.path.join(root, "train2017", json.load(f)["images"][3]["file_name"])
    Path(bad_image).write_bytes(b"not an image")
    lvis["bad_image"] = bad_image
    return lvis


LVIS_MICRO_CONFIG = '''"""vitdet_micro with the LVIS recipe's sampler and evaluator (from
configs/common/data/lvis_lsj.py) on a tiny LVIS-format set, which it registers: the
CLI's --dataset takes COCO jsons, so an LVIS-format set is registered in code."""
from functools import partial

from detectron2.config import LazyConfig
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.lvis import load_lvis_json

_micro = LazyConfig.load({micro!r})
_lvis = LazyConfig.load({lvis_lsj!r})
model, optimizer, lr_multiplier, train, dataloader = (
    _micro[key] for key in ("model", "optimizer", "lr_multiplier", "train", "dataloader")
)
dataloader.train.dataset.names = {train_name!r}
dataloader.test.dataset.names = {val_name!r}
dataloader.train.sampler = _lvis.dataloader.train.sampler
dataloader.evaluator = _lvis.dataloader.evaluator
for _name, _json in (({train_name!r}, {train_json!r}), ({val_name!r}, {val_json!r})):
    if _name not in DatasetCatalog.list():
        DatasetCatalog.register(_name, partial(load_lvis_json, _json, {image_root!r}))
        MetadataCatalog.get(_name).set(
            thing_classes={classes!r}, json_file=_json, image_root={image_root!r}, evaluator_type="lvis"
        )
'''


def write_lvis_micro_config(path, lvis, train_name="lvis_micro_train", val_name="lvis_micro_val"):
    """``LVIS_MICRO_CONFIG`` on ``tiny_lvis_shapes`` (``lvis``) at ``path``; returns ``path``
    as a string."""
    with open(lvis["train"]) as f:
        classes = [c["name"] for c in sorted(json.load(f)["categories"], key=lambda c: c["id"])]
    configs = Path(__file__).resolve().parents[1] / "configs"
    Path(path).write_text(LVIS_MICRO_CONFIG.format(
        micro=str(configs / "demo" / "vitdet_micro.py"), lvis_lsj=str(configs / "common" / "data" / "lvis_lsj.py"),
        train_name=train_name, val_name=val_name, train_json=lvis["train"], val_json=lvis["val"],
        image_root=lvis["image_root"], classes=classes,
    ))
    return str(path)
