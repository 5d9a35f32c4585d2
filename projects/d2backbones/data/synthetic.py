"""Synthetic shapes: a small instance-segmentation dataset generated on first use.

It lets the demo train and evaluate a detector without downloading anything.
Classes differ only by shape: colours, textures, sizes and backgrounds are
drawn independently of the class, so a model has to look at outlines.

Each image holds 1-6 objects painted back to front; an instance's mask is the
part of it that stays visible. Objects are placed so that every earlier
instance keeps a sizeable visible part, so nothing visible is left unlabeled.

The dataset is written once as COCO json + JPEG images under a cache directory
(see :func:`default_datasets_root`) and reused afterwards.
"""

import functools
import json
import os
import shutil
import tempfile

import cv2
import numpy as np
import pycocotools.mask as mask_util

from .user_datasets import register_user_dataset

__all__ = [
    "SYNTHETIC_CLASSES",
    "default_datasets_root",
    "generate_synthetic_shapes",
    "register_synthetic_shapes",
    "synthetic_dataset_name",
]

# Four classes, as in the reference 10-minute measurement the demo is held against
# (detectron2's ViTDet on 4-class synthetic shapes). With ellipse and cross added, the
# tiny ViTDet reached 30% less AP in the same time.
SYNTHETIC_CLASSES = ("circle", "triangle", "square", "star")

# Bump whenever the generator's output changes, so stale caches are never reused.
DATASET_VERSION = "synthetic_shapes_v2"

# name -> (number of images, seed); seeds differ so val never repeats a train image.
DEFAULT_SPLITS = {"train": (2000, 0), "val": (300, 1)}
DEFAULT_IMAGE_SIZE = 128

_MIN_OBJECTS, _MAX_OBJECTS = 1, 6
# Object diameter as a fraction of the image side.
_MIN_SIZE_FRACTION, _MAX_SIZE_FRACTION = 0.1, 0.6
# An instance must keep this much visible area, else the new occluder is re-placed.
_MIN_VISIBLE_FRACTION, _MIN_VISIBLE_PIXELS = 0.2, 30
_PLACEMENT_ATTEMPTS = 10
# Objects must stand out from what lies under them, or they cannot be learned.
_MIN_COLOUR_DISTANCE, _COLOUR_ATTEMPTS = 80.0, 10
_TEXTURES = ("solid", "stripes", "noise")
_JPEG_QUALITY = 95
# cv2 draws with sub-pixel precision when given coordinates scaled by 2**shift.
_DRAW_SHIFT = 4


def default_datasets_root():
    """Directory that holds generated datasets: ``$D2BACKBONES_DATASETS``
    or ``~/.cache/d2backbones/datasets``."""
    return os.path.expanduser(
        os.environ.get("D2BACKBONES_DATASETS", "~/.cache/d2backbones/datasets")
    )


# ---- shapes ----------------------------------------------------------------


def _regular_polygon(num_vertices, phase=0.0):
    angles = phase + 2 * np.pi * np.arange(num_vertices) / num_vertices
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star_outline():
    outline = _regular_polygon(10, phase=-np.pi / 2)
    outline[1::2] *= 0.45
    return outline


def _unit_outline(class_name):
    """Outline of a shape centred at 0 with circumradius 1, before rotation."""
    if class_name == "circle":
        return _regular_polygon(64)
    if class_name == "triangle":
        return _regular_polygon(3)
    if class_name == "square":
        return _regular_polygon(4, phase=np.pi / 4)
    if class_name == "star":
        return _star_outline()
    raise ValueError(f"Unknown synthetic shape class: {class_name!r}")


def _shape_mask(class_name, rng, image_size):
    """Binary mask of one randomly sized, rotated and placed shape."""
    radius = 0.5 * image_size * rng.uniform(_MIN_SIZE_FRACTION, _MAX_SIZE_FRACTION)
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    # Centres keep the circumscribed circle inside the image: shapes are never cut off.
    center = rng.uniform(radius, image_size - radius, size=2)
    outline = _unit_outline(class_name) @ rotation.T * radius + center
    # Pixel (x, y) covers [x, x+1) x [y, y+1) but cv2 puts pixel centres on integers.
    points = np.round((outline - 0.5) * (1 << _DRAW_SHIFT)).astype(np.int32)
    mask = np.zeros((image_size, image_size), dtype=np.uint8)
    cv2.fillPoly(mask, [points], 1, lineType=cv2.LINE_8, shift=_DRAW_SHIFT)
    return mask


# ---- appearance -------------------------------------------------------------


def _smooth_noise(rng, image_size, cells, amplitude):
    """Low-frequency noise: a coarse random grid, upsampled smoothly."""
    grid = rng.normal(0, amplitude, size=(cells, cells, 3)).astype(np.float32)
    return cv2.resize(grid, (image_size, image_size), interpolation=cv2.INTER_CUBIC)


@functools.lru_cache(maxsize=4)
def _pixel_grid(image_size):
    """Row and column index of every pixel, as float32 images."""
    grid = np.mgrid[0:image_size, 0:image_size].astype(np.float32)
    grid.flags.writeable = False  # shared between calls
    return grid[0], grid[1]


def _directional_ramp(rng, image_size):
    """Values in [0, 1] that increase along a random direction."""
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = _pixel_grid(image_size)
    ramp = xs * np.cos(angle) + ys * np.sin(angle)
    return (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)


def _background(rng, image_size):
    start, end = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    ramp = _directional_ramp(rng, image_size)[..., None]
    image = start + (end - start) * ramp
    return image + _smooth_noise(rng, image_size, cells=int(rng.integers(3, 9)), amplitude=25)


def _stripes(rng, image_size, colour):
    other = 0.5 * colour + 0.5 * rng.uniform(0, 255, size=3)
    period = rng.uniform(4, 12)
    angle = rng.uniform(0, np.pi)
    ys, xs = _pixel_grid(image_size)
    phase = (xs * np.cos(angle) + ys * np.sin(angle)) * (2 * np.pi / period)
    on_stripe = (np.sin(phase) > 0)[..., None]
    return np.where(on_stripe, colour, other).astype(np.float32)


def _object_texture(rng, image_size, colour):
    """Full-image paint for one object; only the object's pixels get used."""
    kind = _TEXTURES[rng.integers(len(_TEXTURES))]
    if kind == "solid":
        return np.broadcast_to(colour.astype(np.float32), (image_size, image_size, 3))
    if kind == "stripes":
        return _stripes(rng, image_size, colour)
    return colour + _smooth_noise(rng, image_size, cells=int(rng.integers(6, 16)), amplitude=30)


def _pick_colour(rng, canvas, mask):
    """A random colour far from the mean colour of what the object will cover."""
    covered = canvas[mask].mean(axis=0)
    best, best_distance = None, -1.0
    for _ in range(_COLOUR_ATTEMPTS):
        colour = rng.uniform(0, 255, size=3)
        distance = float(np.linalg.norm(colour - covered))
        if distance >= _MIN_COLOUR_DISTANCE:
            return colour
        if distance > best_distance:
            best, best_distance = colour, distance
    return best


# ---- scene composition ------------------------------------------------------


def _keeps_instances_visible(visible_masks, full_areas, occluder):
    for visible, full_area in zip(visible_masks, full_areas):
        remaining = int(np.count_nonzero(visible & ~occluder))
        if remaining < _MIN_VISIBLE_PIXELS or remaining < _MIN_VISIBLE_FRACTION * full_area:
            return False
    return True


def _place_shape(rng, class_name, image_size, visible_masks, full_areas):
    """Mask for a new top-most shape, or None when no tried placement leaves
    every earlier instance visible enough."""
    for _ in range(_PLACEMENT_ATTEMPTS):
        mask = _shape_mask(class_name, rng, image_size).astype(bool)
        if np.count_nonzero(mask) < _MIN_VISIBLE_PIXELS:
            continue
        if _keeps_instances_visible(visible_masks, full_areas, mask):
            return mask
    return None


def render_scene(rng, image_size):
    """Draw one image.

    Returns:
        image (ndarray): HxWx3 uint8.
        instances (list[tuple[int, ndarray]]): (class index, visible bool mask),
            back to front; no pixel is in two masks.
    """
    canvas = _background(rng, image_size)
    class_indices, visible_masks, full_areas = [], [], []
    for _ in range(rng.integers(_MIN_OBJECTS, _MAX_OBJECTS + 1)):
        class_index = int(rng.integers(len(SYNTHETIC_CLASSES)))
        mask = _place_shape(
            rng, SYNTHETIC_CLASSES[class_index], image_size, visible_masks, full_areas
        )
        if mask is None:
            continue
        colour = _pick_colour(rng, canvas, mask)
        canvas[mask] = _object_texture(rng, image_size, colour)[mask]
        for visible in visible_masks:
            visible &= ~mask
        class_indices.append(class_index)
        visible_masks.append(mask)
        full_areas.append(int(np.count_nonzero(mask)))
    canvas += rng.normal(0, 4, size=canvas.shape).astype(np.float32)  # sensor noise
    image = np.clip(canvas, 0, 255).astype(np.uint8)
    return image, list(zip(class_indices, visible_masks))


# ---- COCO encoding ----------------------------------------------------------


def _pixel_outline(mask):
    """Outline of the first blob of ``mask`` along pixel edges, as corner
    coordinates, so that COCO's polygon rasterization gives the mask back.

    cv2 traces contours through pixel centres, which cuts every boundary pixel
    in half. Tracing the mask upsampled 2x instead puts sub-pixel ``u`` on the
    boundary for both the left (u = 2x) and right (u = 2x + 1) edge of pixel
    ``x``; ``(u + 1) // 2`` maps them to the corners x and x + 1 exactly.
    """
    x, y, width, height = cv2.boundingRect(mask)
    # Tracing only the crop around the blob is much cheaper than the whole image.
    crop = mask[y : y + height, x : x + width]
    upsampled = crop.repeat(2, axis=0).repeat(2, axis=1)
    contours, _ = cv2.findContours(
        upsampled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE, offset=(2 * x, 2 * y)
    )
    corners = (contours[0].reshape(-1, 2) + 1) // 2
    corners = corners[np.any(corners != np.roll(corners, 1, axis=0), axis=1)]
    # Keep only the corners where the outline turns.
    incoming = corners - np.roll(corners, 1, axis=0)
    outgoing = np.roll(corners, -1, axis=0) - corners
    turns = incoming[:, 0] * outgoing[:, 1] - incoming[:, 1] * outgoing[:, 0] != 0
    return corners[turns]


def encode_segmentation(mask):
    """COCO segmentation of a binary mask: a polygon when one reproduces the
    mask exactly (a single region without holes), else compressed RLE."""
    mask = np.asfortranarray(mask.astype(np.uint8))
    height, width = mask.shape
    outline = _pixel_outline(mask)
    if len(outline) >= 3:
        polygon = outline.reshape(-1).tolist()  # corners are whole numbers
        decoded = mask_util.decode(mask_util.frPyObjects([polygon], height, width))[..., 0]
        if np.array_equal(decoded, mask):
            return [polygon]
    rle = mask_util.encode(mask)
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _annotation(mask, category_id, image_id, annotation_id):
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": encode_segmentation(mask),
        "bbox": [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0],
        "area": int(len(xs)),
        "iscrowd": 0,
    }


# ---- writing a split --------------------------------------------------------

_ANNOTATIONS_FILE = "annotations.json"
_IMAGES_DIR = "images"


def _split_dirname(split, num_images, image_size, seed):
    return f"{split}_n{num_images}_{image_size}px_seed{seed}"


def _write_split(output_dir, num_images, image_size, seed):
    image_dir = os.path.join(output_dir, _IMAGES_DIR)
    os.makedirs(image_dir)
    images, annotations = [], []
    for index in range(num_images):
        # One stream per image: any image can be reproduced on its own.
        rng = np.random.default_rng([seed, index])
        image, instances = render_scene(rng, image_size)
        image_id = index + 1
        file_name = f"{index:06d}.jpg"
        # Colours are random, so cv2's BGR channel order changes nothing.
        ok = cv2.imwrite(
            os.path.join(image_dir, file_name), image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]
        )
        if not ok:
            raise OSError(f"Could not write {os.path.join(image_dir, file_name)}")
        images.append(
            {"id": image_id, "file_name": file_name, "width": image_size, "height": image_size}
        )
        for class_index, mask in instances:
            annotations.append(_annotation(mask, class_index + 1, image_id, len(annotations) + 1))
    coco = {
        "info": {
            "description": DATASET_VERSION,
            "num_images": num_images,
            "image_size": image_size,
            "seed": seed,
        },
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": name, "supercategory": "shape"}
            for i, name in enumerate(SYNTHETIC_CLASSES)
        ],
    }
    # Written last: inside a finished split directory its presence means "complete".
    with open(os.path.join(output_dir, _ANNOTATIONS_FILE), "w") as f:
        f.write(json.dumps(coco, separators=(",", ":")))


def generate_synthetic_shapes(root, split, num_images, image_size, seed):
    """Generate one split unless the cache already holds it.

    The split lives in ``<root>/synthetic_shapes_v1/<split>_n<N>_<S>px_seed<seed>/``
    as ``annotations.json`` and ``images/*.jpg``. It is generated in a private
    temporary directory and renamed into place when complete, so an interrupted
    run is never reused and concurrent callers (e.g. DDP ranks) are safe: the
    first rename wins and the others use its result.

    Args:
        root (str): datasets root, e.g. :func:`default_datasets_root()`.
        split (str): split name, used in the directory name only.
        num_images (int): number of images.
        image_size (int): side of the square images, in pixels.
        seed (int): generation seed.

    Returns:
        tuple[str, str]: path of the COCO json and of the image directory.
    """
    parent = os.path.join(os.path.expanduser(root), DATASET_VERSION)
    final_dir = os.path.join(parent, _split_dirname(split, num_images, image_size, seed))
    json_path = os.path.join(final_dir, _ANNOTATIONS_FILE)
    image_dir = os.path.join(final_dir, _IMAGES_DIR)
    if os.path.isfile(json_path):
        return json_path, image_dir

    os.makedirs(parent, exist_ok=True)
    # Same filesystem as final_dir, so the rename below is atomic.
    temp_dir = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(final_dir)}-", dir=parent)
    try:
        _write_split(temp_dir, num_images, image_size, seed)
        try:
            os.rename(temp_dir, final_dir)
        except OSError:
            # Another process finished first (renaming onto a non-empty dir fails).
            if not os.path.isfile(json_path):
                raise
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    return json_path, image_dir


def synthetic_dataset_name(split):
    """The catalog name of a split: ``synthetic_shapes_train``, ``synthetic_shapes_val``."""
    return f"synthetic_shapes_{split}"


def register_synthetic_shapes(
    root=None, num_train_images=None, num_val_images=None, image_size=DEFAULT_IMAGE_SIZE
):
    """Register ``synthetic_shapes_train`` and ``synthetic_shapes_val``.

    Both splits are generated right away if not cached (about 16 s for the
    defaults on 2 CPU cores), so the json files exist before anything, e.g. a
    COCOEvaluator, reads them.
    Calling it again with the same arguments is a no-op.

    Args:
        root (str or None): datasets root; defaults to :func:`default_datasets_root`.
        num_train_images, num_val_images (int or None): split sizes; None keeps
            the defaults (2000 and 300).
        image_size (int): image side in pixels.

    Returns:
        list[str]: the registered dataset names.
    """
    root = default_datasets_root() if root is None else root
    sizes = {"train": num_train_images, "val": num_val_images}
    names = []
    for split, (default_num_images, seed) in DEFAULT_SPLITS.items():
        num_images = default_num_images if sizes[split] is None else sizes[split]
        json_path, image_dir = generate_synthetic_shapes(root, split, num_images, image_size, seed)
        name = synthetic_dataset_name(split)
        register_user_dataset(name, json_path, image_dir)
        names.append(name)
    return names
