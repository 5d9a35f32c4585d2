#!/usr/bin/env python
"""Install detectron2 (upstream commit a59f056) from the PyPI wheel ``sal-detectron2``.

detectron2 has no release on PyPI under its own name. The wheel
``sal-detectron2==0.7.2`` carries upstream commit a59f056 unchanged (bar the
version string and one Python 3.11 fix). This script:

1. keeps any detectron2 that is already importable (e.g. a CUDA build from source);
2. downloads the wheel with pip and checks its sha256;
3. unpacks only the ``detectron2/`` package, without the prebuilt ``_C*.so``
   (nothing here needs it: ROIAlign/NMS come from torchvision);
4. installs it as a distribution named ``detectron2`` with the wheel's
   requirements plus the two it forgets (fvcore, iopath).
"""
import argparse
import hashlib
import importlib.util
import json
import pathlib
import subprocess
import sys
import tempfile
import zipfile

WHEEL_REQUIREMENT = "sal-detectron2==0.7.2"
WHEEL_SHA256 = "491af0c7f79bdb2d178e46f6cb16a97c4ac968d45c41ea3f6b6435d59bbee561"
DIST_VERSION = "0.7.2+a59f056"
EXTRA_REQUIREMENTS = ["fvcore", "iopath"]

PYPROJECT = """\
[build-system]
requires = ["setuptools>=64,<81"]
build-backend = "setuptools.build_meta"

[project]
name = "detectron2"
version = "{version}"
description = "detectron2 commit a59f056, repackaged from the sal-detectron2 wheel"
requires-python = ">=3.8"
dependencies = {dependencies}

[tool.setuptools.packages.find]
include = ["detectron2*"]

[tool.setuptools.package-data]
"*" = ["*.yaml", "*.py"]
"""


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_wheel(directory):
    subprocess.check_call([
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--only-binary=:all:", "--python-version", "3.10", "-d", str(directory),
        WHEEL_REQUIREMENT,
    ])
    (wheel,) = pathlib.Path(directory).glob("sal_detectron2-*.whl")
    actual = sha256_of(wheel)
    if actual != WHEEL_SHA256:
        raise SystemExit(
            f"error: {wheel.name} has sha256 {actual}, expected {WHEEL_SHA256}. "
            "Refusing to install an unverified detectron2."
        )
    return wheel


def wheel_requirements(archive):
    (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    requirements = []
    for line in archive.read(metadata).decode().splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            requirements.append(line.split(":", 1)[1].strip())
    return requirements


def unpack_source(wheel, destination):
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            is_extension = pathlib.PurePosixPath(name).name.startswith("_C")
            if name.startswith("detectron2/") and not is_extension:
                archive.extract(name, destination)
        dependencies = wheel_requirements(archive) + EXTRA_REQUIREMENTS
    # A JSON array of strings is also a valid TOML array, markers' quotes included.
    (destination / "pyproject.toml").write_text(
        PYPROJECT.format(version=DIST_VERSION, dependencies=json.dumps(dependencies))
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true",
                        help="install even if a detectron2 is already importable")
    args = parser.parse_args()

    spec = importlib.util.find_spec("detectron2")
    if spec is not None and not args.force:
        print(f"detectron2 already importable from {spec.submodule_search_locations[0]}; keeping it.")
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        wheel = download_wheel(tmp / "wheel")
        source = tmp / "src"
        source.mkdir()
        unpack_source(wheel, source)
        subprocess.check_call([
            sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", str(source)
        ])
    print(f"installed detectron2 {DIST_VERSION} from {WHEEL_REQUIREMENT} (sha256 verified)")


if __name__ == "__main__":
    main()
