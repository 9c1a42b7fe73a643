"""Pretraining: learning, exact resume, export to Detectron2, published checkpoints."""
import json
import os

import pytest
import torch

from nasnet_det.errors import CheckpointError
from nasnet_det.pretrain import PretrainConfig, train

from conftest import TINY_DETECTOR, randomize_batch_norm

# a tiny NASNet-A (one normal cell per stage, F = 8) with the ImageNet stem, on 32 px digits
TINY = dict(genotype="nasnet_a", arch="1@192", stem="imagenet", stem_multiplier=1.0, data="digits",
            img_size=32, batch_size=32, workers=0, progress=False)


@pytest.mark.slow  # a learning check (make test-all runs it)
def test_tiny_nasnet_learns_digits(tmp_path):
    # a budget measured to take about a minute on the 2-core CI machine (kept under 2 min)
    metrics = train(PretrainConfig(**TINY, epochs=4, out=str(tmp_path)))
    assert max(metrics["top1"], metrics["ema_top1"]) >= 0.90, metrics
    with open(tmp_path / "metrics.json") as f:
        saved = json.load(f)
    assert {"top1", "top5", "ema_top1", "ema_top5"} <= set(saved) and len(saved["history"]) == 4
    assert all(0.0 <= saved[k] <= 1.0 for k in ("top1", "top5", "ema_top1", "ema_top5"))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 2-epoch run (exact kill -9 + resume: tests/test_faults.py)."""
    base = tmp_path_factory.mktemp("pretrain")
    metrics = train(PretrainConfig(**TINY, epochs=2, drop_path_keep_prob=0.7, out=str(base / "straight")))
    return base, metrics


def test_resume_refuses_another_network(finished_run, tmp_path):
    base, _ = finished_run
    with pytest.raises(CheckpointError, match=r"checkpoint -> now: arch '1@192' -> '2@384'"):
        train(PretrainConfig(**dict(TINY, arch="2@384"), epochs=3, out=str(base / "straight")), resume=True)
    corrupt = tmp_path / "checkpoint.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        train(PretrainConfig(**TINY, epochs=1, out=str(tmp_path)), resume=True)
    assert corrupt.read_bytes() == b"not a checkpoint"  # left for inspection, not overwritten


def test_export_loads_into_detection_with_no_missing_keys(finished_run):
    pytest.importorskip("detectron2")
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from nasnet_det.detection.checkpoint import NASNetCheckpointer
    from nasnet_det.detection.config import get_config

    base, _ = finished_run
    exported = torch.load(base / "straight" / "backbone.pth", weights_only=False)
    ema = torch.load(base / "straight" / "checkpoint.pth", weights_only=False)["ema"]
    opts = TINY_DETECTOR + ["MODEL.NASNET.SKIP_REDUCTION_LAYER_INPUT", "False",
                            "MODEL.WEIGHTS", str(base / "straight" / "backbone.pth")]
    for config, prefix in (("Base-NASNet-FPN.yaml", ("backbone.bottom_up.net.",)),
                           ("Base-NASNet-FRCNN.yaml", ("backbone.net.", "roi_heads.res5."))):
        cfg = get_config(config, opts, register_datasets=False)
        model = build_model(cfg)
        NASNetCheckpointer(model, cfg=cfg).load(cfg.MODEL.WEIGHTS)
        loaded = {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}
        assert len(loaded) == len(exported["model"])  # every backbone tensor has a source: none missing
        for key, value in loaded.items():
            source = next(key[len(p):] for p in prefix if key.startswith(p))
            assert torch.equal(value, ema[source]), key  # the EMA weights

    for override, message in ((["MODEL.NASNET.ARCH", "2@384"], "num_cells 3 vs 6"),
                              (["MODEL.NASNET.GENOTYPE", "darts_v2"], "genotype 'nasnet_a' vs 'darts_v2'"),
                              (["MODEL.NASNET.SKIP_REDUCTION_LAYER_INPUT", "True"], "skip_reduction_layer_input False vs True")):
        cfg = get_config("Base-NASNet-FPN.yaml", opts + override, register_datasets=False)
        with pytest.raises(CheckpointError, match=message):
            NASNetCheckpointer(build_model(cfg), cfg=cfg).load(cfg.MODEL.WEIGHTS)
    # Detectron2's own checkpointer only warns, and leaves the mismatched tensors at random init
    cfg = get_config("Base-NASNet-FPN.yaml", opts + ["MODEL.NASNET.SKIP_REDUCTION_LAYER_INPUT", "True"], register_datasets=False)
    model = build_model(cfg)
    before = model.state_dict()["backbone.bottom_up.net.cells.cell_1.pre1.conv_path1.weight"].clone()
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    assert torch.equal(model.state_dict()["backbone.bottom_up.net.cells.cell_1.pre1.conv_path1.weight"], before)


@pytest.mark.large
def test_converted_timm_weights_give_timm_features_in_detectron2(tmp_path):
    pytest.importorskip("detectron2")
    timm = pytest.importorskip("timm")
    import subprocess
    import sys

    from detectron2.modeling import build_model

    from nasnet_det.detection.checkpoint import NASNetCheckpointer
    from nasnet_det.detection.config import get_config

    reference = randomize_batch_norm(timm.create_model("nasnetalarge", pretrained=False)).eval()
    source = tmp_path / "nasnetalarge.pth"
    torch.save(reference.state_dict(), source)
    target = tmp_path / "nasnet_a_large_d2.pth"
    tool = os.path.join(os.path.dirname(__file__), "..", "tools", "convert_pretrained.py")
    done = subprocess.run([sys.executable, tool, str(source), str(target)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "nasnet_a_large" in done.stdout

    cfg = get_config("nasnet_a_large_fpn_frcnn.yaml", ["MODEL.DEVICE", "cpu", "MODEL.NASNET.AVG_POOL_PAD", "include",
                                                       "MODEL.WEIGHTS", str(target)], register_datasets=False)
    model = build_model(cfg).eval()
    NASNetCheckpointer(model, cfg=cfg).load(cfg.MODEL.WEIGHTS)
    x = torch.randn(1, 3, 331, 331)
    with torch.no_grad():
        ours = model.backbone.bottom_up(x)
        expected = reference.forward_intermediates(x, indices=[1, 2, 3, 4], intermediates_only=True)
    for name, tap in zip(["stride4", "stride8", "stride16", "stride32"], expected):
        assert (ours[name] - tap).abs().max().item() <= 1e-4, name

    bad = tmp_path / "bad.pth"
    torch.save({k: v for k, v in reference.state_dict().items() if k != "cell_3.conv_1x1.conv.weight"}, bad)
    done = subprocess.run([sys.executable, tool, str(bad), str(tmp_path / "x.pth")], capture_output=True, text=True)
    assert done.returncode != 0 and "missing keys" in done.stderr and "cells.cell_3.pre0.conv.weight" in done.stderr
    assert not (tmp_path / "x.pth").exists()


def test_pretraining_writes_tensorboard_scalars_per_epoch(finished_run):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    base, straight = finished_run
    events = EventAccumulator(str(base / "straight"))
    events.Reload()
    top1 = events.Scalars("pretrain/top1")
    assert [e.step for e in top1] == [1, 2] and top1[-1].value == pytest.approx(straight["top1"])
    assert {"pretrain/train_loss", "pretrain/ema_top1", "pretrain/lr"} <= set(events.Tags()["scalars"])
