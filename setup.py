from setuptools import find_packages, setup

setup(
    name="nasnet_det",
    version="0.1.0",
    description="NASNet cells as data, networks from genotypes, and NASNet backbones for Detectron2",
    packages=find_packages(include=["nasnet_det", "nasnet_det.*"]),
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",
        "torchvision",
        "timm>=1.0",
        "fvcore",
        "iopath",
        "pycocotools",
        "numpy",
        "tqdm",
        "matplotlib",
        "Pillow",
        "scikit-learn",
        "opencv-python-headless",  # Detectron2's Visualizer (the demo's detections.png)
    ],
    extras_require={
        # Detectron2 is installed by `make install` (no registry carries it under its own name).
        "test": ["pytest", "pretrainedmodels", "six"],  # pretrainedmodels imports six
        "ray": ["ray>=2.9"],
    },
)
