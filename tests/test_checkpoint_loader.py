"""The checkpoint loader: format detection, safe reading, the load report and its
refusals, and the download path (a loopback HTTP server only, never the internet)."""
import argparse
import functools
import hashlib
import http.server
import os
import pickle
import socket
import threading

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import LazyConfig, instantiate
from detectron2.layers import ShapeSpec
from timm.models.convnext import ConvNeXt as TimmConvNeXt
from timm.models.swin_transformer import SwinTransformer as TimmSwin
from timm.models.vision_transformer import VisionTransformer as TimmViT

from conftest import load_tool, vit_block_state
from d2backbones.checkpoint import (
    CheckpointError,
    CorruptCheckpointError,
    DownloadError,
    UnsafeCheckpointError,
    ZOO,
    cache_path_for,
    detect_format,
    get_zoo_entry,
    load_checkpoint,
    read_checkpoint_file,
    read_state_dict,
    registered_formats,
    resolve_source,
)
from d2backbones.checkpoint import sources, zoo
from d2backbones.checkpoint.loader import load_matching_shapes
from d2backbones.checkpoint.sources import UnsafeURLError
from d2backbones.checkpoint.zoo import ZooEntry
from d2backbones.convnext import SparseConvNeXt
from d2backbones.pretrain import SparK

MODEL_CONFIG = "configs/common/models/mask_rcnn_vitdet.py"
DIM, DEPTH, HEADS = 64, 2, 2


class NotAWeight:
    """A custom class in a checkpoint: reading it needs full unpickling."""


@functools.lru_cache(maxsize=None)
def _detector_cfg():
    """The ViTDet Mask R-CNN with a 2-block ViT and slim heads (the heads' size only costs time here)."""
    cfg = LazyConfig.load(MODEL_CONFIG).model
    cfg.backbone.net.update(embed_dim=DIM, depth=DEPTH, num_heads=HEADS, img_size=128, window_block_indexes=[0])
    cfg.backbone.square_pad = 128
    cfg.roi_heads.box_head.update(conv_dims=[], fc_dims=[32])
    cfg.roi_heads.box_predictor.input_shape = ShapeSpec(channels=32)
    cfg.roi_heads.mask_head.conv_dims = [16]
    return cfg


def tiny_vitdet():
    torch.manual_seed(0)
    return instantiate(_detector_cfg())


def mae_encoder(dim=DIM, depth=DEPTH, grid=14):
    """Keys and shapes of an MAE encoder file (``mae_pretrain_vit_base.pth``) at width ``dim``."""
    torch.manual_seed(1)
    state = {
        "cls_token": torch.randn(1, 1, dim),
        "pos_embed": torch.randn(1, grid * grid + 1, dim),
        "patch_embed.proj.weight": torch.randn(dim, 3, 16, 16),
        "patch_embed.proj.bias": torch.randn(dim),
        "norm.weight": torch.randn(dim),
        "norm.bias": torch.randn(dim),
    }
    for i in range(depth):
        state.update(vit_block_state(f"blocks.{i}.", dim))
    return state


def mae_full():
    """MAE encoder + decoder (``mae_pretrain_vit_base_full.pth``), decoder 32 wide."""
    state = mae_encoder()
    state.update(
        {
            "mask_token": torch.zeros(1, 1, 32),
            "decoder_embed.weight": torch.randn(32, DIM),
            "decoder_embed.bias": torch.zeros(32),
            "decoder_pos_embed": torch.zeros(1, 197, 32),
            "decoder_blocks.0.norm1.weight": torch.ones(32),
            "decoder_norm.weight": torch.ones(32),
            "decoder_pred.weight": torch.randn(768, 32),
        }
    )
    return state


def official_convnext():
    """Keys of ``convnext_tiny_1k_224.pth``, two stages of one block."""
    state = {"downsample_layers.0.0.weight": torch.randn(8, 3, 4, 4), "downsample_layers.0.1.weight": torch.ones(8)}
    for stage, dim in enumerate((8, 16)):
        if stage:
            state[f"downsample_layers.{stage}.1.weight"] = torch.randn(dim, dim // 2, 2, 2)
        state[f"stages.{stage}.0.dwconv.weight"] = torch.randn(dim, 1, 7, 7)
        state[f"stages.{stage}.0.pwconv1.weight"] = torch.randn(4 * dim, dim)
        state[f"stages.{stage}.0.gamma"] = torch.ones(dim)
    state.update({"norm.weight": torch.ones(16), "head.weight": torch.randn(10, 16)})
    return state


def official_swin():
    """Keys of ``swin_tiny_patch4_window7_224.pth``: patch merging ends each stage."""
    return {
        "patch_embed.proj.weight": torch.randn(16, 3, 4, 4),
        "layers.0.blocks.0.attn.relative_position_bias_table": torch.zeros(169, 1),
        "layers.0.blocks.0.attn.relative_position_index": torch.zeros(49, 49, dtype=torch.long),
        "layers.0.blocks.0.attn.qkv.weight": torch.randn(48, 16),
        "layers.0.downsample.reduction.weight": torch.randn(32, 64),
        "layers.0.downsample.norm.weight": torch.ones(64),
        "layers.1.blocks.0.attn.qkv.weight": torch.randn(96, 32),
        "norm.weight": torch.ones(32),
        "head.weight": torch.randn(10, 32),
    }


def timm_state(module_cls, **kwargs):
    torch.manual_seed(2)
    return module_cls(**kwargs).state_dict()


def mimdet_release():
    """Keys of a MIMDet release: ConvStem and MAE decoder under ``backbone.bottom_up``, an FPN."""
    return {
        "backbone.bottom_up.encoder.patch_embed.proj.0.0.weight": torch.randn(8, 3, 3, 3),
        "backbone.bottom_up.encoder.blocks.0.attn.qkv.weight": torch.randn(48, 16),
        "backbone.bottom_up.decoder.decoder_embed.weight": torch.randn(8, 16),
        "backbone.fpn_lateral2.weight": torch.randn(8, 8, 1, 1),
        "roi_heads.box_predictor.cls_score.weight": torch.randn(81, 8),
    }


def detectron2_swin_detector():
    """detectron2's ViTDet-project Swin detector: its SwinTransformer under ``backbone.bottom_up``."""
    return {
        "backbone.bottom_up.patch_embed.proj.weight": torch.randn(16, 3, 4, 4),
        "backbone.bottom_up.layers.0.blocks.0.attn.qkv.weight": torch.randn(48, 16),
        "backbone.bottom_up.layers.0.downsample.reduction.weight": torch.randn(32, 64),
        "backbone.fpn_lateral2.weight": torch.randn(8, 16, 1, 1),
    }


def resnet_detector():
    """A detectron2 R50-FPN training checkpoint: detector keys of a family we do not convert."""
    return {
        "backbone.bottom_up.stem.conv1.weight": torch.randn(8, 3, 7, 7),
        "backbone.bottom_up.res2.0.conv1.weight": torch.randn(8, 8, 1, 1),
        "roi_heads.box_head.fc1.weight": torch.randn(16, 8),
    }


def spark_pretraining():
    """A SparK pretraining checkpoint with a 2-stage ConvNeXt encoder."""
    encoder = SparseConvNeXt(depths=(1, 1, 1, 1), dims=(8, 8, 8, 8), num_stages=2)
    return SparK(encoder=encoder, img_size=16, decoder_width=16).state_dict()


def simmim_swin_pretraining():
    """A SimMIM / MaskFeat checkpoint of a Swin encoder: ``encoder.*`` with a mask token, ``decoder.*``."""
    return {
        "encoder.mask_token": torch.randn(1, 1, 16),
        "encoder.patch_embed.proj.weight": torch.randn(16, 3, 4, 4),
        "encoder.layers.0.blocks.0.attn.qkv.weight": torch.randn(48, 16),
        "decoder.0.weight": torch.randn(48, 16, 1, 1),
    }


SAMPLES = {
    "mae": lambda: {"model": mae_encoder()},
    "mae_full": lambda: {"model": mae_full()},
    "timm_vit": lambda: timm_state(TimmViT, img_size=32, patch_size=16, embed_dim=16, depth=1, num_heads=1, num_classes=3),
    "vitdet_zoo": lambda: {"model": {k: v.numpy() for k, v in tiny_vitdet().state_dict().items()},
                           "__author__": "Detectron2 Model Zoo"},
    "official_convnext": lambda: {"model": official_convnext()},
    "timm_convnext": lambda: timm_state(TimmConvNeXt, depths=(1, 1, 1, 1), dims=(8, 8, 8, 8), num_classes=3),
    "official_swin": lambda: {"model": official_swin()},
    "timm_swin": lambda: timm_state(TimmSwin, img_size=56, embed_dim=8, depths=(1, 1), num_heads=(1, 2), window_size=7,
                                    num_classes=3),
    "mimdet": lambda: {"model": mimdet_release(), "iteration": 67499},
    "detectron2_swin": lambda: {"model": detectron2_swin_detector()},
    "d2": lambda: {"model": resnet_detector(), "iteration": 10, "trainer": {"iteration": 10}},
    "spark": lambda: {"model": spark_pretraining(), "iteration": 10},
    "mask_token_mim": lambda: {"model": simmim_swin_pretraining(), "iteration": 10},
}


def save(obj, path):
    if str(path).endswith(".pkl"):
        with open(path, "wb") as f:
            pickle.dump(obj, f)
    else:
        torch.save(obj, path)
    return str(path)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_detects_each_format_from_a_file(tmp_path, name):
    path = save(SAMPLES[name](), tmp_path / ("model_final.pkl" if name == "vitdet_zoo" else "checkpoint.pth"))
    state_dict, _, _ = read_state_dict(path)
    assert detect_format(state_dict).name == name


def test_every_registered_format_has_a_sample():
    """A family that adds a format must add a file for it above."""
    assert {f.name for f in registered_formats()} == set(SAMPLES)


def test_mae_loads_into_vitdet_with_a_report(tmp_path):
    mae = mae_encoder()
    path = save({"model": mae}, tmp_path / "mae_pretrain_vit_base.pth")
    model = tiny_vitdet()
    report = load_checkpoint(model, f"{path}?matching_heuristics=True")
    net_state = model.backbone.net.state_dict()
    for key, value in mae.items():
        if key in net_state:
            assert torch.equal(net_state[key], value), key
    assert report.checkpoint_format == "mae"
    # Every ViT weight but the zero-initialised rel-pos tables came from the file.
    vit_missing = {k for k in report.missing if k.startswith("backbone.net.")}
    assert vit_missing == {f"backbone.net.blocks.{i}.attn.rel_pos_{a}" for i in range(DEPTH) for a in "hw"}
    assert len(report.backbone_matched) == len(mae) - 3  # cls_token and the final norm are skipped
    assert report.unexpected == [] and report.mismatched == []
    rows = {row[0]: row[1:] for row in report.rows()}
    assert rows["backbone.net"] == (len(mae) - 3, 2 * DEPTH, 0, 0)
    assert rows["roi_heads.box_head"][0] == 0
    table = report.table()
    assert "backbone.net" in table and "shape mismatch" in table.splitlines()[0]


def test_zoo_pkl_loads_every_key(tmp_path):
    path = save(SAMPLES["vitdet_zoo"](), tmp_path / "model_final_abc123.pkl")
    model = tiny_vitdet()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    report = load_checkpoint(model, path)
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    reference = tiny_vitdet().state_dict()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in reference.items())


def test_backbone_shape_mismatch_refuses_unless_allowed(tmp_path):
    # A 7x7 position grid where the model keeps 14x14: the other weights fit.
    path = save({"model": mae_encoder(grid=7)}, tmp_path / "mae_112px.pth")
    with pytest.raises(CheckpointError, match="allow_backbone_mismatch=True"):
        load_checkpoint(tiny_vitdet(), path)
    report = load_checkpoint(tiny_vitdet(), f"{path}?allow_backbone_mismatch=True")
    assert report.mismatched == [("backbone.net.pos_embed", (1, 50, DIM), (1, 197, DIM))]
    assert "shape mismatch: backbone.net.pos_embed" in report.table()
    assert len(report.backbone_matched) == len(mae_encoder()) - 4


def test_checkpoint_without_backbone_weights_refuses(tmp_path):
    heads_only = {k: v for k, v in tiny_vitdet().state_dict().items() if k.startswith("roi_heads.")}
    path = save({"model": heads_only}, tmp_path / "heads.pth")
    with pytest.raises(CheckpointError, match="gave the backbone no weights"):
        load_checkpoint(tiny_vitdet(), path)


def test_train_net_refuses_to_start_on_a_backbone_mismatch(tmp_path, tiny_shapes, capsys):
    from conftest import DEMO_CONFIG, dataset_flags

    from d2backbones.engine import cli

    state = instantiate(LazyConfig.load(DEMO_CONFIG).model).state_dict()
    state["backbone.net.pos_embed"] = torch.zeros(1, 100, state["backbone.net.pos_embed"].shape[-1])
    path = save({"model": state}, tmp_path / "other_grid.pth")
    args = cli.build_parser().parse_args(
        ["--config-file", DEMO_CONFIG, *dataset_flags("ckpt_tiny", tiny_shapes["train"]),
         "dataloader.train.dataset.names=ckpt_tiny", "dataloader.test.dataset.names=ckpt_tiny",
         f"train.output_dir={tmp_path / 'out'}", f"train.init_checkpoint={path}"]
    )
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2
    assert f"error: 1 backbone weights of {path} do not fit the model's shapes" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out" / "model_final.pth")


@pytest.mark.parametrize("suffix", [".pth", ".pkl"])
def test_truncated_and_random_files_give_one_clear_error(tmp_path, suffix):
    good = save(SAMPLES["vitdet_zoo" if suffix == ".pkl" else "mae"](), tmp_path / f"good{suffix}")
    truncated = tmp_path / f"truncated{suffix}"
    with open(good, "rb") as f:
        truncated.write_bytes(f.read()[: os.path.getsize(good) // 2])
    random_bytes = tmp_path / f"random{suffix}"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(4096))
    for path in (truncated, random_bytes):
        with pytest.raises(CorruptCheckpointError, match="truncated, corrupt or not a checkpoint") as error:
            read_checkpoint_file(str(path))
        # Raised from our code, with pickle's internals suppressed.
        assert error.value.__suppress_context__ and error.value.__cause__ is None


def test_full_unpickling_is_refused_unless_opted_in(tmp_path):
    path = save({"model": mae_encoder(), "extra": NotAWeight()}, tmp_path / "custom.pth")
    with pytest.raises(UnsafeCheckpointError, match="allow_unsafe=True") as error:
        read_checkpoint_file(path)
    assert "NotAWeight" in str(error.value)
    assert isinstance(read_checkpoint_file(path, allow_unsafe=True)["extra"], NotAWeight)
    report = load_checkpoint(tiny_vitdet(), f"{path}?allow_unsafe=True")
    assert report.checkpoint_format == "mae"


def test_types_real_checkpoints_carry_load_without_opt_in(tmp_path):
    """MAE / MIMDet files carry an ``argparse.Namespace``; some carry numpy values."""
    path = save({"model": mae_encoder(), "args": argparse.Namespace(lr=1e-3), "epoch": np.int64(799),
                 "stats": np.zeros(3, dtype=np.float32)}, tmp_path / "mae_with_args.pth")
    assert read_checkpoint_file(path)["args"].lr == 1e-3


def test_pkl_with_code_is_refused(tmp_path):
    path = save({"model": {"a": np.zeros(2)}, "__author__": "x", "hook": NotAWeight()}, tmp_path / "model.pkl")
    with pytest.raises(UnsafeCheckpointError, match="NotAWeight"):
        read_checkpoint_file(path)


class RunsCommand:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _write_with(writer, obj, path):
    if writer == "torch.save":
        torch.save(obj, path)
    elif writer == "torch.save protocol 4":
        torch.save(obj, path, pickle_protocol=4)
    elif writer == "legacy torch.save":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=int(writer[-1]))


@pytest.mark.parametrize("writer", ["torch.save", "torch.save protocol 4", "legacy torch.save", "pickle 2", "pickle 4"])
def test_pth_that_would_run_a_command_is_called_unsafe(tmp_path, writer):
    """torch refuses it with the same exception type as a damaged file; the globals the
    file names (found without running it) make the difference, for every way of writing it."""
    marker = tmp_path / "ran"
    path = str(tmp_path / "model.pth")
    _write_with(writer, {"model": mae_encoder(), "hook": RunsCommand(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as error:
        read_checkpoint_file(path)
    message = str(error.value)
    assert f"checkpoint {path} is unsafe" in message and f"{os.system.__module__}.system" in message
    assert "?allow_unsafe=True" in message and "truncated" not in message
    assert not marker.exists()


PKL_LAYOUTS = {
    "zoo": {"model": {"conv.weight": np.arange(6, dtype=np.float32).reshape(2, 3)}, "__author__": "Detectron2 Model Zoo"},
    "caffe2_blobs": {"blobs": {"conv1_w": np.ones((2, 2), np.float32), "conv1_w_momentum": np.zeros((2, 2), np.float32)},
                     "cfg": "not weights"},
    "plain_dict": {"res2_0_branch1_w": np.full((3,), 2.0), "res2_0_branch1_w_momentum": np.zeros(3), "pred_b": np.ones(1)},
    "model_without_author": {"model": {"w": np.zeros(1)}},
}


def _assert_same(ours, theirs):
    assert type(ours) is type(theirs)
    if isinstance(theirs, dict):
        assert ours.keys() == theirs.keys()
        for key in theirs:
            _assert_same(ours[key], theirs[key])
    elif isinstance(theirs, np.ndarray):
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
    else:
        assert ours == theirs


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("layout", sorted(PKL_LAYOUTS))
def test_pkl_reader_gives_what_detectron2_reads(tmp_path, layout, protocol):
    path = str(tmp_path / "model.pkl")
    with open(path, "wb") as f:
        pickle.dump(PKL_LAYOUTS[layout], f, protocol=protocol)
    theirs = DetectionCheckpointer(torch.nn.Module())._load_file(path)
    _assert_same(read_checkpoint_file(path), theirs)
    _assert_same(read_checkpoint_file(path, allow_unsafe=True), theirs)


def test_pkl_holding_no_dict_is_corrupt(tmp_path):
    path = save([np.zeros(2)], tmp_path / "list.pkl")
    with pytest.raises(CorruptCheckpointError, match="holds a list, not a dict"):
        read_checkpoint_file(path)


def test_load_matching_shapes_skips_and_reports_what_does_not_fit():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mismatched = load_matching_shapes(
        model, {"0.weight": np.ones((2, 3), np.float32), "1.weight": torch.ones(5, 2), "extra": torch.ones(1)}
    )
    assert mismatched == [("1.weight", (5, 2), (4, 2))]
    state = model.state_dict()
    assert torch.equal(state["0.weight"], torch.ones(2, 3))
    assert all(torch.equal(state[k], before[k]) for k in ("0.bias", "1.weight", "1.bias"))


def test_nan_weights_are_refused_naming_them(tmp_path):
    state = mae_encoder()
    state["blocks.1.attn.qkv.weight"][0, 0] = float("nan")
    state["pos_embed"][0, 0, 0] = float("inf")
    path = save({"model": state}, tmp_path / "diverged.pth")
    with pytest.raises(CorruptCheckpointError, match=r"NaN or infinite values in 2 of its \d+ weights") as error:
        read_state_dict(path)
    assert "blocks.1.attn.qkv.weight" in str(error.value) and "pos_embed" in str(error.value)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("D2BACKBONES_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("D2BACKBONES_OFFLINE", raising=False)
    return tmp_path / "cache"


def test_uncached_zoo_name_fails_at_once_offline(cache, monkeypatch):
    monkeypatch.setenv("D2BACKBONES_OFFLINE", "1")
    entry = get_zoo_entry("zoo://vitdet/coco/mask_rcnn_vitdet_b_100ep")
    with pytest.raises(DownloadError) as error:
        resolve_source(entry.uri)
    message = str(error.value)
    assert entry.url in message and cache_path_for(entry.url) in message
    assert cache_path_for(entry.url).startswith(str(cache))
    # A file placed there is found without any network.
    os.makedirs(os.path.dirname(cache_path_for(entry.url)), exist_ok=True)
    save(SAMPLES["vitdet_zoo"](), cache_path_for(entry.url))
    assert resolve_source(entry.uri).path == cache_path_for(entry.url)


def test_unknown_zoo_name_suggests_a_close_one():
    with pytest.raises(KeyError, match="did you mean zoo://vitdet/coco/mask_rcnn_vitdet_b_100ep"):
        get_zoo_entry("zoo://vitdet/coco/mask_rcnn_vitdet_b_100")


def test_zoo_entries_name_existing_configs_and_published_numbers():
    for entry in ZOO.values():
        assert entry.url.startswith("https://") and entry.kind in ("detector", "pretrained")
        assert os.path.isfile(entry.config), entry.name
    assert (ZOO["vitdet/coco/mask_rcnn_vitdet_b_100ep"].box_ap, ZOO["vitdet/coco/mask_rcnn_vitdet_b_100ep"].mask_ap) == (51.6, 45.9)
    assert (ZOO["vitdet/lvis/cascade_mask_rcnn_vitdet_b_100ep"].box_ap, ZOO["vitdet/lvis/cascade_mask_rcnn_vitdet_b_100ep"].mask_ap) == (43.0, 38.9)


def test_readme_zoo_table_gives_every_entry_its_command():
    tool = load_tool("convert_checkpoint")
    readme = open("README.md").read()
    rows = tool.zoo_table(count_params=False).splitlines()[2:]
    assert len(rows) == len(ZOO)
    for name, entry in ZOO.items():
        assert f"| {name} | {entry.kind} |" in readme, name
        assert f"`{tool.zoo_command(entry)}`" in readme, name


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests = []

    def do_GET(self):
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / 'www'``."""
    root = tmp_path / "www"
    root.mkdir()
    _CountingHandler.requests = []
    handler = functools.partial(_CountingHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_shows_progress_and_is_cached(server, cache, capsys):
    root, base = server
    save({"model": mae_encoder()}, root / "mae.pth")
    url = f"{base}/ckpt/mae.pth"
    (root / "ckpt").mkdir()
    os.replace(root / "mae.pth", root / "ckpt" / "mae.pth")
    path = resolve_source(url).path
    assert path == cache_path_for(url) and os.path.isfile(path)
    assert "100%" in capsys.readouterr().err
    assert resolve_source(url).path == path
    assert _CountingHandler.requests == ["/ckpt/mae.pth"]
    report = load_checkpoint(tiny_vitdet(), url)
    assert report.checkpoint_format == "mae"


def test_zoo_download_checks_hash_and_size(server, cache, monkeypatch):
    root, base = server
    file_path = save({"model": mae_encoder()}, root / "model_final.pth")
    data = open(file_path, "rb").read()
    good = ZooEntry("test/loopback/good", f"{base}/model_final.pth", "detector", MODEL_CONFIG,
                    sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    bad = ZooEntry("test/loopback/bad", f"{base}/model_final.pth?v=2", "detector", MODEL_CONFIG, sha256="0" * 64)
    monkeypatch.setitem(zoo.ZOO, good.name, good)
    monkeypatch.setitem(zoo.ZOO, bad.name, bad)
    with pytest.raises(DownloadError, match="failed its check .*sha256") as error:
        resolve_source(bad.uri)
    assert "expected " + "0" * 64 in str(error.value)
    target = cache_path_for(bad.url)
    assert not os.path.exists(target) and not os.path.exists(target + ".part")
    assert resolve_source(good.uri).zoo_name == good.name


@pytest.mark.parametrize(
    "url_path", ["x/../../escape.pth", "x/%2e%2e/%2E%2E/escape.pth", "x/..%2F..%2Fescape.pth", "x/.%2e/.%2E/escape.pth"]
)
def test_url_that_would_leave_the_cache_is_refused_before_fetching(server, cache, tmp_path, url_path):
    root, base = server
    save({"model": mae_encoder()}, root / "escape.pth")
    with pytest.raises(UnsafeURLError, match=r"would place the file outside the cache") as error:
        resolve_source(f"{base}/{url_path}")
    assert len(str(error.value).splitlines()) == 1 and str(cache) in str(error.value)
    assert _CountingHandler.requests == []
    assert not (tmp_path / "escape.pth").exists() and not os.path.exists(cache)


def test_url_with_an_ordinary_escape_still_downloads_into_the_cache(server, cache):
    root, base = server
    (root / "ckpt").mkdir()
    save({"model": mae_encoder()}, root / "ckpt" / "mae v2.pth")
    path = resolve_source(f"{base}/ckpt/mae%20v2.pth").path
    assert path == str(cache / "ckpt" / "mae%20v2.pth") and os.path.isfile(path)


def test_download_gives_up_on_a_silent_server(cache):
    """A server that accepts and never answers: the short timeout ends the wait."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/never.pth"
    try:
        with pytest.raises(DownloadError, match="place it at"):
            sources.download(url, str(cache / "never.pth"), timeout=0.5, progress=False)
    finally:
        listener.close()


def test_convert_checkpoint_tool_writes_detector_keys(tmp_path):
    tool = load_tool("convert_checkpoint")
    source = save({"model": mae_encoder()}, tmp_path / "mae.pth")
    output = tmp_path / "converted.pth"
    tool.main([source, "--from", "auto", "--to", "d2", "--family", "vitdet", "--output", str(output)])
    converted = torch.load(output, weights_only=True)["model"]
    assert all(k.startswith("backbone.net.") for k in converted) and "backbone.net.blocks.1.mlp.fc2.bias" in converted
    report = load_checkpoint(tiny_vitdet(), str(output))
    assert report.checkpoint_format == "d2" and len(report.backbone_matched) == len(converted)
