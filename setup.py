"""d2backbones: ViTDet, MIMDet, ConvNeXt and Swin as first-class Detectron2 backbones.

Install ranges, not pins: ``install_requires`` says what the package works with, so
that ``pip install .`` keeps a torch the user already has (a CUDA build, say). The
exact versions the suite was run with are in ``constraints.txt``, which ``make
install`` applies (``pip install -c constraints.txt``). The lower bounds of torch and
torchvision are the versions tested, not a proven minimum.

detectron2 itself is not on PyPI under its own name, so it is not listed here:
``make install`` (or ``tools/install_detectron2.py``) puts it in place first, and
keeps any detectron2 that is already importable.

The configs stay in ``configs/`` at the top of the repository, where the scripts
and docs name them, and are installed as the package ``d2backbones.model_zoo.configs``
so that :mod:`d2backbones.model_zoo` finds them in a wheel as in a checkout.
"""
from setuptools import find_namespace_packages, find_packages, setup

CONFIGS_PACKAGE = "d2backbones.model_zoo.configs"
# The ONNX exporter and its check with ONNX Runtime; torch.onnx.export's default
# (dynamo) path needs onnxscript.
EXPORT_REQUIRES = ["onnx>=1.17", "onnxruntime>=1.18", "onnxscript>=0.2"]
# tools/analyze_results.py: TIDE's error breakdown, by its authors' implementation.
ANALYSIS_REQUIRES = ["tidecv>=1.0.1"]


def config_packages():
    """``configs/`` and its folders as packages under :data:`CONFIGS_PACKAGE`.

    Listed one by one (they have no ``__init__.py``) so that setuptools copies every
    config as a module of its folder, relative imports between them included."""
    folders = find_namespace_packages("configs", exclude=["*__pycache__*"])
    return [CONFIGS_PACKAGE] + [f"{CONFIGS_PACKAGE}.{folder}" for folder in folders]


setup(
    name="d2backbones",
    version="0.1.0",
    description="ViT-era backbones (ViTDet, MIMDet, ConvNeXt, Swin) for Detectron2",
    python_requires=">=3.10",
    package_dir={"": "projects", CONFIGS_PACKAGE: "configs"},
    packages=find_packages("projects") + config_packages(),
    install_requires=[
        # Tested from 2.14.1 / 0.29.1 (the only versions run here).
        "torch>=2.14.1,<3",
        "torchvision>=0.29.1,<1",
        # detectron2 a59f056 and the compiled pycocotools/shapely wheels it was run with need numpy 1.x.
        "numpy>=1.24,<2",
        # detectron2.model_zoo imports pkg_resources, which setuptools 81 removes.
        "setuptools<81",
        "fvcore>=0.1.5",
        "iopath>=0.1.7,<0.1.11",
        "timm>=1.0",
        "pycocotools>=2.0.6",
        "faster-coco-eval>=1.6",
        "lvis>=0.5.3",
        "matplotlib>=3.5",
        "opencv-python-headless>=4.5,<4.11",
        "Pillow>=9",
        "tensorboard>=2.10",
        "psutil>=5.9",
        "shapely>=2.0",
        # tools/submit.py: Slurm jobs, requeued with --resume on preemption.
        "submitit>=1.4",
        # Sample images (skimage.data) for the prediction example in the README.
        "scikit-image>=0.21",
    ],
    extras_require={
        "export": EXPORT_REQUIRES,
        "analysis": ANALYSIS_REQUIRES,
        "dev": ["pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6", "import-linter>=2.0"] + EXPORT_REQUIRES + ANALYSIS_REQUIRES,
    },
)
