"""d2backbones: ViTDet, MIMDet, ConvNeXt and Swin as first-class Detectron2 backbones.

detectron2 itself is not on PyPI under its own name, so it is not listed in
``install_requires``: ``make install`` (or ``tools/install_detectron2.py``)
puts it in place first, and keeps any detectron2 that is already importable.
"""
from setuptools import find_packages, setup

setup(
    name="d2backbones",
    version="0.1.0",
    description="ViT-era backbones (ViTDet, MIMDet, ConvNeXt, Swin) for Detectron2",
    python_requires=">=3.10",
    package_dir={"": "projects"},
    packages=find_packages("projects"),
    install_requires=[
        "torch==2.14.1",
        "torchvision==0.29.1",
        "numpy<2",
        "setuptools<81",
        "fvcore",
        "iopath",
        "timm>=1.0",
        "pycocotools>=2.0.6",
        "faster-coco-eval>=1.6",
        "lvis",
        "matplotlib",
        "opencv-python-headless<4.11",
        "Pillow",
        "tensorboard",
        "psutil",
        "shapely",
        # tools/submit.py: Slurm jobs, requeued with --resume on preemption.
        "submitit",
        # Sample images (skimage.data) for the prediction example in the README.
        "scikit-image",
    ],
    extras_require={"dev": ["pytest", "hypothesis", "import-linter>=2.0"]},
)
