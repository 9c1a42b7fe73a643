"""Installed means installed: the wheel, put in a folder of its own, works from another directory."""
import os
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")

CHECK = """
import os, sys
import nasnet_det
from nasnet_det import model_zoo
assert nasnet_det.__file__.startswith(sys.argv[1]), nasnet_det.__file__
names = model_zoo.list_configs()
assert "nasnet_a_mobile_fpn_frcnn.yaml" in names and "Base-NASNet-FPN.yaml" in names, names
cfg = model_zoo.get_config("nasnet_a_mobile_fpn_frcnn.yaml", ["MODEL.DEVICE", "cpu"])
from detectron2.modeling import build_model
model = build_model(cfg)
from detectron2.config import instantiate
lazy = instantiate(model_zoo.get_config("nasnet_a_mobile_fpn_frcnn.py").model)  # its LazyConfig twin
assert sum(p.numel() for p in lazy.parameters()) == sum(p.numel() for p in model.parameters())
from nasnet_det.demo import DEFAULT_RACCOON
assert DEFAULT_RACCOON.startswith(sys.argv[1]) and len(os.listdir(os.path.join(DEFAULT_RACCOON, "images"))) == 200
from nasnet_det.benchmarks.ground_truth import CELLS
assert CELLS.startswith(sys.argv[1]) and sum(1 for _ in open(CELLS)) >= 150
from nasnet_det.search import prior
assert prior.MODEL_PATH.startswith(sys.argv[1]) and 90 < prior.score(nasnet_det.genotypes.NASNET_A) < 100
print(type(model.backbone.bottom_up.net).__name__, len(names))
"""


def test_the_wheel_works_from_another_directory(tmp_path):
    pytest.importorskip("detectron2")
    dist, target, elsewhere = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), ROOT],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = dist.glob("nasnet_det-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "nasnet_det/model_zoo/configs/nasnet_a_large_frcnn.yaml" in names
    assert {"nasnet_det/model_zoo/configs/nasnet_a_large_frcnn.py",
            "nasnet_det/model_zoo/configs/common/models/nasnet_frcnn.py"} <= set(names)
    assert "nasnet_det/data/raccoon/LICENSE" in names and "nasnet_det/data/coco_minival_tf_ids.txt" in names
    assert "nasnet_det/benchmarks/ground_truth/cells.jsonl" in names
    # the default reward's coefficients ship (fitted to NAS-Bench-301); no LaMCTS file (CC BY-NC) does
    assert "nasnet_det/search/prior_nb301.json" in names and not any("lamcts" in n.lower() for n in names)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", CHECK, str(target)], cwd=elsewhere, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[0] == "NASNet"
    script = subprocess.run([str(target / "bin" / "nasnet-det"), "search", "--budget", "0"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=300)
    assert script.returncode == 1 and script.stderr.strip() == "error: budget must be an integer of at least 1, got 0"


def test_the_declared_lower_bounds_have_the_apis_the_code_calls():
    import re

    import torch

    setup = open(os.path.join(ROOT, "setup.py")).read()
    assert 'python_requires=">=3.10"' in setup and sys.version_info >= (3, 10)
    low = tuple(int(v) for v in re.search(r'"torch>=(\d+)\.(\d+)"', setup).groups())
    assert low >= (2, 4)  # what the calls below need; the installed torch is at least that
    assert tuple(int(v) for v in torch.__version__.split(".")[:2]) >= low
    assert torch.is_autocast_enabled("cpu") is False  # the device_type form (torch 2.4)
    assert torch.compiler.is_compiling() is False  # (torch 2.3)
