from setuptools import find_packages, setup

setup(
    name="nasnet_det",
    version="0.3.0",
    description="NASNet cells as data, networks from genotypes, and NASNet backbones for Detectron2",
    packages=find_packages(include=["nasnet_det", "nasnet_det.*"]),
    # configs/ (linked as nasnet_det/model_zoo/configs, copied into the wheel) and the demo's photos
    package_data={
        "nasnet_det.model_zoo": ["configs/*.yaml", "configs/*.py", "configs/*/*.py", "configs/*/*/*.py"],
        "nasnet_det.benchmarks.ground_truth": ["cells.jsonl", "summary.json"],
        "nasnet_det.search": ["prior_nb301.json"],  # fitted to NAS-Bench-301 (NASLib, Apache-2.0)
        "nasnet_det.data": ["raccoon/*.md", "raccoon/LICENSE", "raccoon/images/*.jpg", "raccoon/annotations/*.xml",
                            "coco_minival_tf_ids.txt"],
    },
    entry_points={"console_scripts": ["nasnet-det = nasnet_det.commands:run"]},
    # torch 2.4: torch.is_autocast_enabled(device_type) and torch.compiler.is_compiling (the fast CPU paths' checks)
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.4",
        "torchvision>=0.19",
        "timm>=1.0",
        "fvcore",
        "iopath",
        "pycocotools",
        "numpy",
        "tqdm",
        "matplotlib",
        "Pillow",
        "PyYAML",
        "scikit-learn",
        "scipy",  # Kendall tau and Spearman rho of the ranking tools
        "tensorboard",
        "opencv-python-headless",  # Detectron2's Visualizer (the demo's detections.png)
    ],
    extras_require={
        # Detectron2 is installed by `make install` (no registry carries it under its own name).
        "test": ["pytest", "pretrainedmodels", "six"],  # pretrainedmodels imports six
        "ray": ["ray>=2.9"],
        # the tpe and gp strategies (optuna's samplers) and every search's optuna.journal, viewed with optuna-dashboard
        "search": ["optuna>=4.0", "optuna-dashboard"],
        # a self-contained dot (Rust port of Graphviz): clean cell diagrams without a system Graphviz
        "draw": ["graphviz-pure>=0.2"],
        # tools/export.py --format onnx and tools/predict.py --runtime onnxruntime
        "export": ["onnx", "onnxruntime"],
    },
)
