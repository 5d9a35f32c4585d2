"""The package installs like a library: a wheel built from the tree, installed into a
fresh virtual environment, works from outside the repository.

The environment is made over the base interpreter, so the editable install of this
checkout (a ``.pth`` in the development venv) is not in it; the development venv's
site-packages is added as a plain path entry, which gives torch and detectron2 but
runs none of its ``.pth`` files. The wheel is installed before that entry exists, so
pip sees no other d2backbones.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from d2backbones.checkpoint.zoo import ZOO

REPO = Path(__file__).resolve().parents[1]
# What the wheel is built from: the rest of the tree (tests, tools, outputs) stays behind.
SOURCES = ["setup.py", "pyproject.toml", "configs", "projects/d2backbones"]
DEMO = "demo/vitdet_micro.py"
VITDET = "ViTDet/COCO/mask_rcnn_vitdet_b_100ep.py"
# Run inside the installed environment; prints one json line.
PROBE = f"""
import json, sys
import torch
import d2backbones
from d2backbones import model_zoo

torch.manual_seed(0)
model = model_zoo.get({DEMO!r}, device="cpu").eval()
with torch.no_grad():
    (output,) = model([{{"image": torch.randint(0, 256, (3, 64, 64)).float()}}])
print(json.dumps({{
    "sys_path": sys.path,
    "module_files": sorted({{m.__file__ for n, m in sys.modules.items()
                            if n.split(".")[0] == "d2backbones" and getattr(m, "__file__", None)}}),
    "config_file": model_zoo.get_config_file({DEMO!r}),
    "configs": model_zoo.list_configs(),
    "image_size": list(output["instances"].image_size),
    "fields": sorted(output["instances"].get_fields()),
    "vitdet_url": model_zoo.get_checkpoint_url({VITDET!r}),
    "vitdet_init_checkpoint": model_zoo.get_config({VITDET!r}, trained=True).train.init_checkpoint,
}}))
"""


def _copy_sources(destination):
    for name in SOURCES:
        source, target = REPO / name, destination / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _run(command, **kwargs):
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert completed.returncode == 0, f"{command[:4]} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    return completed.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv folder, the probe's json) of a fresh venv with only the wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    # A copy, so a stale build/ of the tree cannot leak removed files into the wheel.
    _copy_sources(tmp / "src")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
          "-w", str(tmp / "dist"), str(tmp / "src")])
    (wheel,) = (tmp / "dist").glob("d2backbones-*.whl")

    env_dir = tmp / "venv"
    # From the development venv, EnvBuilder takes the base interpreter (sys._base_executable).
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
          str(wheel)])
    site_packages = Path(sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)}))
    dependencies = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site_packages / "d2backbones_test_dependencies.pth").write_text("\n".join(sorted(dependencies)) + "\n")

    work = tmp / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PYTHONNOUSERSITE="1", OMP_NUM_THREADS="1")
    stdout = _run([str(python), "-c", PROBE], cwd=work, env=env)
    return env_dir, json.loads(stdout.strip().splitlines()[-1])


def _is_under(path, folder):
    return Path(path).resolve().is_relative_to(folder)


def test_imports_the_installed_copy(installed):
    env_dir, probe = installed
    assert probe["module_files"], "no d2backbones module was imported"
    assert all(_is_under(f, env_dir) for f in probe["module_files"]), probe["module_files"][:5]
    # Only the development venv's site-packages may come from the checkout (torch, detectron2).
    from_checkout = [p for p in probe["sys_path"] if p and _is_under(p, REPO) and not _is_under(p, REPO / ".venv")]
    assert from_checkout == []


def test_configs_travel_with_the_wheel(installed):
    env_dir, probe = installed
    assert _is_under(probe["config_file"], env_dir)
    in_tree = sorted(p.relative_to(REPO / "configs").as_posix() for p in (REPO / "configs").rglob("*.py"))
    assert probe["configs"] == in_tree


def test_packaged_config_builds_a_working_model(installed):
    _, probe = installed
    assert probe["image_size"] == [64, 64]
    assert {"pred_boxes", "pred_classes", "pred_masks", "scores"} <= set(probe["fields"])


def test_checkpoint_url_of_a_packaged_config(installed):
    _, probe = installed
    expected = ZOO["vitdet/coco/mask_rcnn_vitdet_b_100ep"].url
    assert probe["vitdet_url"] == expected
    assert probe["vitdet_init_checkpoint"] == expected
