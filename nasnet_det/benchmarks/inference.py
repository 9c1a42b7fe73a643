"""Inference on the CPU (or a GPU), in one run: the NASNet-A Mobile FPN detector eager, as
TorchScript and through onnxruntime; and the backbone network alone against the reference ports
(Cadene's NASNet-A Mobile; timm's NASNet-A Large). Runtimes are timed alternately, the median
reported, with the ratio to our eager model (see nasnet_det.benchmarks.timing for the method).
"""
from __future__ import annotations

import os
import tempfile
from typing import Callable, Optional

import torch

from .timing import BenchConfig, time_alternately, write_results

from ..detection.export import export_detector_onnx, export_onnx, export_torchscript, onnx_session


def backbone_fast_paths(title: str, build_reference: Callable, build_ours: Callable, size: int, batch: int,
                        iters: int, warmup: int, log=print) -> dict:
    """The reference port's eager model against ours eager, with BatchNorm folded, folded +
    channels_last, and through onnxruntime; timed alternately; speed = reference time / time."""
    from ..modeling.fuse import fuse_batch_norm

    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    reference, ours = build_reference().eval(), build_ours().eval()
    fused = fuse_batch_norm(build_ours().eval())
    fused_cl = fuse_batch_norm(build_ours().eval()).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    runners = {"reference eager": lambda: reference(x), "ours eager": lambda: ours(x),
               "ours, BN folded": lambda: fused(x), "ours, BN folded + channels_last": lambda: fused_cl(x_cl)}
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        try:
            session = onnx_session(export_onnx(ours, (x,), os.path.join(folder, "net.onnx"), ["image"], ["logits"],
                                               {"image": {0: "batch"}}))
            array = x.numpy()
            runners["ours, onnxruntime"] = lambda: session.run(None, {"image": array})
        except Exception as e:  # noqa: BLE001  (onnxruntime missing: time the rest)
            log(f"onnxruntime skipped: {type(e).__name__}: {e}")
        seconds = time_alternately(runners, iters, warmup)
    ref = seconds["reference eager"]
    log(f"{title}, batch {batch}, {size} px, cpu fp32 (median of {iters}):")
    for name, s in seconds.items():
        log(f"  {name:<32} {1000 * s / batch:8.1f} ms/image   {ref / s:5.2f}x the reference")
    return {name: {"ms_per_image": 1000 * s / batch, "speed_vs_reference": ref / s} for name, s in seconds.items()}


def benchmark_inference(height: int = 320, width: int = 480, iters: int = 5, warmup: int = 2,
                        config: str = "nasnet_a_mobile_fpn_frcnn.yaml", json_path: Optional[str] = None,
                        backbone_batches: tuple = (1, 8), log=print) -> dict:
    from detectron2.modeling import build_model

    from .. import model_zoo
    from .backbone import build_ours_nasnet_a_large, build_timm_nasnetalarge
    from .pretrain import build_cadene_nasnetamobile, build_ours_nasnet_a_mobile

    cfg = model_zoo.get_config(config, ["MODEL.DEVICE", "cpu"])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    image = torch.rand(3, height, width) * 255
    results: dict = {"detector": {}, "backbone": {}}
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        traced = torch.jit.load(export_torchscript(model, image, os.path.join(folder, "model.ts")))
        runners = {"eager": lambda: model.inference([{"image": image}], do_postprocess=False),
                   "torchscript": lambda: traced(image)}
        try:
            session = onnx_session(export_detector_onnx(model, image, os.path.join(folder, "model.onnx")))
            array = image.numpy()
            runners["onnxruntime"] = lambda: session.run(None, {"image": array})
        except Exception as e:  # onnxruntime missing, or an op it lacks: say so, time the rest
            log(f"onnxruntime skipped: {type(e).__name__}: {e}")
        model.eval()  # the ONNX exporter can leave the module in training mode
        seconds = time_alternately(runners, iters, warmup)
    log(f"{config} detector, batch 1, {height}x{width}, cpu fp32, median of {iters} alternating runs after {warmup} warm-up:")
    for name, s in seconds.items():
        results["detector"][name] = {"ms_per_image": 1000 * s, "speed_vs_eager": seconds["eager"] / s}
        log(f"  {name:<12} {1000 * s:8.1f} ms/image   {seconds['eager'] / s:5.2f}x eager")
    for title, size, reference, ours in (
            ("NASNet-A Mobile (classifier) vs pretrainedmodels' nasnetamobile", 224, build_cadene_nasnetamobile,
             build_ours_nasnet_a_mobile),
            ("NASNet-A Large (classifier) vs timm's nasnetalarge", 331, build_timm_nasnetalarge, build_ours_nasnet_a_large)):
        for batch in backbone_batches:
            results["backbone"][f"{title}, batch {batch}"] = backbone_fast_paths(
                title, reference, ours, size, batch, iters, warmup, log)
    if json_path:
        write_results(json_path, BenchConfig(batch=1, size=height, width=width, iters=iters, warmup=warmup), results)
    return results
