"""Bad data: odd image storage, unreadable files, degenerate and malformed annotations."""
import json
import logging
import os

import numpy as np
import pytest
from conftest import MICRO_CONFIG, read_metrics
from detectron2.data import DatasetCatalog
from detectron2.data.detection_utils import read_image
from PIL import Image

from d2backbones.data import register_user_dataset
from d2backbones.data.coco_checks import clean_dataset_dicts
from d2backbones.data.robust_images import BadImageError, read_image_any_depth
from d2backbones.engine import cli

EXIF_ORIENTATION = 0x0112
ROTATED_90_CW = 6  # EXIF: rotate the stored pixels 90 degrees clockwise to display
pytestmark = pytest.mark.usefixtures("one_thread")


def scene(width=64, height=48):
    """An RGB image: a red rectangle and a blue disc on a grey gradient."""
    y, x = np.mgrid[:height, :width]
    image = np.stack([x * 2, y * 3, (x + y)], axis=-1).clip(0, 255).astype(np.uint8)
    image[10:30, 8:30] = (220, 40, 40)
    image[((x - 46) ** 2 + (y - 24) ** 2) < 100] = (30, 60, 200)
    return image


def write_variants(directory):
    """Each storage of ``scene()``: file name -> (PIL image or bytes, note)."""
    rgb = Image.fromarray(scene())
    files = {
        "gray.png": rgb.convert("L"),
        "rgba.png": rgb.convert("RGBA"),
        "palette.png": rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64),
        "gray16.png": Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257),
    }
    for name, image in files.items():
        image.save(os.path.join(directory, name))
    # Stored rotated (48 wide, 64 tall) with an EXIF tag saying how to display it.
    stored = rgb.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_90_CW
    stored.save(os.path.join(directory, "exif_rotated.jpg"), exif=exif, quality=95)
    return rgb


def test_any_storage_reads_as_the_rgb_image_it_shows(tmp_path):
    rgb = write_variants(tmp_path)
    gray = np.asarray(rgb.convert("L").convert("RGB"))
    for name in ("gray.png", "rgba.png", "palette.png"):
        ours = read_image_any_depth(str(tmp_path / name), format="RGB")
        assert ours.shape == (48, 64, 3) and ours.dtype == np.uint8
        # detectron2 reads these right already: same array.
        np.testing.assert_array_equal(ours, read_image(str(tmp_path / name), format="RGB"))
    np.testing.assert_array_equal(read_image_any_depth(str(tmp_path / "rgba.png"), "RGB"), scene())

    # 16-bit: detectron2 saturates everything above 255 to white; ours scales by 255/65535.
    ours = read_image_any_depth(str(tmp_path / "gray16.png"), format="RGB")
    np.testing.assert_array_equal(ours, gray)
    assert read_image(str(tmp_path / "gray16.png"), format="RGB").mean() > 250

    rotated = read_image_any_depth(str(tmp_path / "exif_rotated.jpg"), format="BGR")
    assert rotated.shape == (48, 64, 3)
    assert np.abs(rotated[..., ::-1].astype(int) - scene()).mean() < 6


def test_unreadable_files_raise_naming_the_file(tmp_path):
    Image.fromarray(scene()).save(tmp_path / "whole.jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    for name in ("truncated.jpg", "corrupt.png", "missing.jpg"):
        with pytest.raises(BadImageError, match=name):
            read_image_any_depth(str(tmp_path / name), "RGB")


def box_annotation(annotation_id, image_id, bbox, category_id=1, **extra):
    x, y, w, h = bbox
    polygon = [x, y, x + w, y, x + w, y + h, x, y + h]
    return dict(id=annotation_id, image_id=image_id, category_id=category_id, bbox=list(bbox),
                area=max(w, 0) * max(h, 0), iscrowd=0, segmentation=[polygon], **extra)


def write_dataset(directory, images, annotations, categories=None):
    """COCO json for ``images`` (file name -> (width, height)); returns (json, image dir)."""
    coco = {
        "images": [dict(id=i + 1, file_name=name, width=w, height=h) for i, (name, (w, h)) in enumerate(images.items())],
        "annotations": annotations,
        "categories": categories or [dict(id=1, name="rectangle"), dict(id=2, name="disc")],
    }
    path = os.path.join(directory, "annotations.json")
    with open(path, "w") as f:
        json.dump(coco, f)
    return path, str(directory)


def train_briefly(name, dataset, output_dir, *overrides, flags=()):
    argv = [
        *flags, "--config-file", MICRO_CONFIG, "--dataset", f"{name}={dataset[0]}:{dataset[1]}",
        f"dataloader.train.dataset.names={name}", f"dataloader.test.dataset.names={name}",
        f"train.output_dir={output_dir}", "train.log_period=1", "train.seed=5", "train.max_iter=5",
        "train.checkpointer.period=100", *overrides,
    ]
    return cli.main(cli.build_parser().parse_args(argv))


def read_losses(output_dir):
    return [r["total_loss"] for r in read_metrics(output_dir) if "total_loss" in r]


def odd_and_bad_images(directory):
    """Ten images: five storages of scene(), 16x16, 20:1, and three unreadable files."""
    os.makedirs(directory, exist_ok=True)
    write_variants(directory)
    Image.fromarray(scene(16, 16)).save(os.path.join(directory, "tiny.png"))
    Image.fromarray(scene(400, 20)).save(os.path.join(directory, "wide.png"))
    Image.fromarray(scene()).save(os.path.join(directory, "whole.jpg"))
    data = open(os.path.join(directory, "whole.jpg"), "rb").read()
    os.remove(os.path.join(directory, "whole.jpg"))
    open(os.path.join(directory, "truncated.jpg"), "wb").write(data[: len(data) // 2])
    open(os.path.join(directory, "corrupt.png"), "wb").write(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    sizes = {name: (64, 48) for name in ("gray.png", "rgba.png", "palette.png", "gray16.png", "exif_rotated.jpg")}
    sizes.update({"tiny.png": (16, 16), "wide.png": (400, 20), "truncated.jpg": (64, 48),
                  "corrupt.png": (64, 48), "missing.jpg": (64, 48)})
    boxes = {"tiny.png": (2, 2, 8, 8), "wide.png": (20, 2, 200, 12)}
    annotations = [box_annotation(i + 1, i + 1, boxes.get(name, (8, 10, 22, 20))) for i, name in enumerate(sizes)]
    return write_dataset(directory, sizes, annotations)


def test_odd_images_train_and_unreadable_ones_are_skipped_and_reported(tmp_path, caplog):
    dataset = odd_and_bad_images(tmp_path / "images")
    caplog.set_level(logging.INFO)
    package_logger = logging.getLogger("d2backbones")  # detectron2's setup_logger stops propagation
    package_logger.addHandler(caplog.handler)
    try:
        train_briefly("odd_images", dataset, tmp_path / "run")
    finally:
        package_logger.removeHandler(caplog.handler)

    losses = read_losses(tmp_path / "run")
    assert len(losses) == 5 and all(np.isfinite(losses))
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Skipped unreadable image")]
    named = {os.path.basename(m.split()[3]) for m in warnings}
    assert named == {"truncated.jpg", "corrupt.png", "missing.jpg"}
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Data: ")]
    assert len(summary) == 1 and "from 3 unreadable image files" in summary[0], summary


def test_strict_data_makes_an_unreadable_image_an_error(tmp_path, capsys):
    dataset = odd_and_bad_images(tmp_path / "images")
    with pytest.raises(SystemExit) as exit_info:
        train_briefly("strict_images", dataset, tmp_path / "run", flags=["--strict-data"])
    assert exit_info.value.code == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: cannot read image ") and "--strict-data" in line
    assert any(name in line for name in ("truncated.jpg", "corrupt.png", "missing.jpg"))


def degenerate_annotations(directory):
    """Six images on non-contiguous category ids (3, 17): every degenerate case once."""
    os.makedirs(directory, exist_ok=True)
    names = [f"img{i}.png" for i in range(6)]
    for name in names:
        Image.fromarray(scene()).save(os.path.join(directory, name))
    rle = {"size": [48, 64], "counts": [0, 48 * 64]}  # uncompressed RLE: the whole image
    annotations = [
        box_annotation(1, 1, (8, 10, 22, 20), category_id=3),
        box_annotation(2, 2, (50, 30, 40, 40), category_id=17),  # partly outside: clipped
        box_annotation(3, 2, (100, 100, 10, 10), category_id=3),  # wholly outside: dropped
        box_annotation(4, 3, (8, 10, 0, 20), category_id=3),  # zero width: dropped
        box_annotation(5, 3, (30, 10, -5, 20), category_id=17),  # negative width: dropped
        dict(box_annotation(6, 4, (36, 14, 20, 20), category_id=17), segmentation=[[36, 14, 56, 34]]),  # 2 points
        box_annotation(7, 4, (8, 10, 22, 20), category_id=3),
        dict(box_annotation(8, 5, (0, 0, 64, 48), category_id=3), iscrowd=1, segmentation=rle),
        box_annotation(9, 5, (8, 10, 22, 20), category_id=3),
        # img5.png (id 6) has no annotation at all.
    ]
    categories = [dict(id=3, name="rectangle"), dict(id=17, name="disc")]
    return write_dataset(directory, {name: (64, 48) for name in names}, annotations, categories)


def test_degenerate_annotations_are_cleaned(tmp_path):
    json_path, image_dir = degenerate_annotations(tmp_path / "images")
    register_user_dataset("degenerate_check", json_path, image_dir)
    records = {os.path.basename(r["file_name"]): r for r in DatasetCatalog.get("degenerate_check")}
    boxes = {name: [a["bbox"] for a in r["annotations"]] for name, r in records.items()}
    assert boxes["img0.png"] == [[8, 10, 22, 20]]
    assert boxes["img1.png"] == [[50, 30, 14, 18]]  # clipped to the 64 x 48 image
    assert boxes["img2.png"] == []  # zero and negative width
    assert boxes["img3.png"] == [[8, 10, 22, 20]]  # the 2-point polygon's instance dropped
    assert [a["iscrowd"] for a in records["img4.png"]["annotations"]] == [1, 0]
    assert boxes["img5.png"] == []
    # Category ids 3 and 17 map to contiguous 0 and 1.
    assert {a["category_id"] for r in records.values() for a in r["annotations"]} == {0, 1}
    assert clean_dataset_dicts([], "empty") == []


def test_degenerate_annotations_train_with_finite_losses(tmp_path):
    dataset = degenerate_annotations(tmp_path / "images")
    results = train_briefly("degenerate_train", dataset, tmp_path / "run",
                            "dataloader.test.dataset.filter_empty=False")
    losses = read_losses(tmp_path / "run")
    assert len(losses) == 5 and all(np.isfinite(losses))
    assert set(results) == {"bbox", "segm"}


MALFORMED = [
    (lambda c: c["annotations"][1].update(bbox=[1, 2, "a", 4]), "$.annotations[1].bbox"),
    (lambda c: c["annotations"][0].update(category_id=99), "$.annotations[0].category_id"),
    (lambda c: c["annotations"][2].update(image_id=1234), "$.annotations[2].image_id"),
    (lambda c: c["images"][3].update(width="64"), "$.images[3].width"),
    (lambda c: c["annotations"][5].update(segmentation=[[1, 2, "x", 4, 5, 6]]), "$.annotations[5].segmentation[0]"),
    (lambda c: c["annotations"][7].update(segmentation={"size": [48], "counts": "x"}), "$.annotations[7].segmentation.size"),
    (lambda c: c["annotations"][4].update(iscrowd=2), "$.annotations[4].iscrowd"),
    (lambda c: c["images"][0].update(file_name=7), "$.images[0].file_name"),
]


@pytest.mark.parametrize("corrupt, field", MALFORMED, ids=[field for _, field in MALFORMED])
def test_malformed_json_names_the_file_and_the_field(tmp_path, capsys, corrupt, field):
    json_path, image_dir = degenerate_annotations(tmp_path / "images")
    with open(json_path) as f:
        coco = json.load(f)
    corrupt(coco)
    with open(json_path, "w") as f:
        json.dump(coco, f)
    with pytest.raises(SystemExit) as exit_info:
        cli.run(["--config-file", MICRO_CONFIG, "--dataset", f"malformed={json_path}:{image_dir}"])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and json_path in lines[0] and f"{field}:" in lines[0], lines


def test_invalid_json_syntax_names_the_file_and_position(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [1, 2,, 3]}')
    with pytest.raises(ValueError, match=r"broken\.json.*line 1 column 18"):
        register_user_dataset("broken_syntax", str(path), str(tmp_path))
