"""Ship a NASNet detector: TorchScript and ONNX, through Detectron2's ``TracingAdapter``.

The detector is traced on one image (after the test-time resize) without Detectron2's
post-processing; its outputs are ``boxes`` (N, 4) in the resized image, ``classes`` (N,),
``scores`` (N,) and ``image_size`` (2,). ONNX also gets ``backbone.onnx`` (the NASNet + FPN
features) and, in the FPN layout, ``nasnet.onnx`` (the NASNet's taps). The TF 'SAME' padding stays computed from the input, so
the exported files take any image size; :func:`export` checks that on a second size against the
eager model and reports the largest difference. ``metadata.json`` beside the files holds what a
runtime needs to use them (class names, input format, resize).
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional

import numpy as np
import torch

from ..errors import ConfigError
from ..io import atomic_path, write_json

logger = logging.getLogger(__name__)

FORMATS = ("torchscript", "onnx")
OUTPUTS = ("boxes", "classes", "scores", "image_size")  # TracingAdapter's order: sorted field names, then the size
FILES = {"torchscript": "model.ts", "onnx": "model.onnx"}


def _inference(model, inputs):
    return [{"instances": model.inference(inputs, do_postprocess=False)[0]}]


def _adapter(model, image: torch.Tensor):
    from detectron2.export import TracingAdapter

    return TracingAdapter(model, [{"image": image}], _inference)


def eager_outputs(model, image: torch.Tensor) -> List[np.ndarray]:
    """The eager model's outputs on ``image`` (CHW, resized, as the exported files take it), in
    :data:`OUTPUTS` order."""
    with torch.no_grad():
        instances = _inference(model, [{"image": image}])[0]["instances"]
    return [instances.pred_boxes.tensor.numpy(), instances.pred_classes.numpy(), instances.scores.numpy(),
            np.asarray(instances.image_size)]


def largest_difference(a: List[np.ndarray], b: List[np.ndarray]) -> float:
    """Max abs difference of two output lists (inf when their shapes differ)."""
    if [x.shape for x in a] != [y.shape for y in b]:
        return float("inf")
    return max((float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max()) for x, y in zip(a, b) if x.size),
               default=0.0)


def export_torchscript(model, image: torch.Tensor, path: str) -> str:
    adapter = _adapter(model, image)
    with torch.no_grad():
        traced = torch.jit.trace(adapter, adapter.flattened_inputs)
    with atomic_path(path) as tmp:  # a failed or killed export leaves the previous file whole
        traced.save(tmp)
    return path


def export_onnx(module: torch.nn.Module, args: tuple, path: str, input_names: List[str], output_names: List[str],
                dynamic_axes: Dict[str, Dict[int, str]]) -> str:
    training = module.training
    with torch.no_grad(), atomic_path(path) as tmp:  # a failed or killed export leaves the previous file whole
        # the TorchScript-based exporter: it keeps the shape arithmetic of the 'SAME' padding in the graph
        torch.onnx.export(module, args, tmp, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=17, dynamo=False)
    module.train(training)  # the exporter can leave it in training mode
    return path


class BackboneOutputs(torch.nn.Module):
    """The detector's backbone (NASNet + FPN) with its feature dict as a tuple, for ONNX. It takes
    normalised images padded to a multiple of ``size_divisibility`` (as Detectron2's ImageList)."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.names = list(backbone.output_shape())

    def forward(self, x):
        features = self.backbone(x)
        return tuple(features[name] for name in self.names)


def _backbone_input(model, image: torch.Tensor) -> torch.Tensor:
    """What the detector hands its backbone: normalised, padded as Detectron2's ImageList pads."""
    from detectron2.structures import ImageList

    x = (image.to(model.pixel_mean.device) - model.pixel_mean) / model.pixel_std
    return ImageList.from_tensors([x], model.backbone.size_divisibility).tensor


def export_detector_onnx(model, image: torch.Tensor, path: str) -> str:
    """The detector as ONNX (outputs :data:`OUTPUTS`), image height, width and detection count dynamic."""
    return export_onnx(_adapter(model, image), (image,), path, ["image"], list(OUTPUTS),
                       {"image": {1: "height", 2: "width"}, "boxes": {0: "detections"}, "classes": {0: "detections"},
                        "scores": {0: "detections"}})


def run_torchscript(path: str, image: np.ndarray) -> List[np.ndarray]:
    model = torch.jit.load(path)
    with torch.no_grad():
        return [t.numpy() for t in model(torch.as_tensor(image))]


def onnx_session(path: str):
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("the onnxruntime runtime needs onnxruntime: pip install onnxruntime "
                          "(make install does)") from None
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])


def export(model, cfg, image: torch.Tensor, check_image: torch.Tensor, fmt: str, output_dir: str,
           thing_classes: Optional[List[str]] = None, log=print) -> dict:
    """Export ``model`` as ``fmt`` into ``output_dir``; returns the files and the checks' figures.

    ``image`` is what the trace sees; ``check_image`` (another size) is what the exported file is
    compared with the eager model on.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    path = os.path.join(output_dir, FILES[fmt])
    report: Dict[str, object] = {"format": fmt, "traced_size": list(image.shape[-2:]),
                                 "checked_size": list(check_image.shape[-2:])}
    reference = eager_outputs(model, check_image)
    if fmt == "torchscript":
        export_torchscript(model, image, path)
        got = run_torchscript(path, check_image.numpy())
    else:
        export_detector_onnx(model, image, path)
        got = onnx_session(path).run(None, {"image": check_image.numpy()})
        # the backbone alone too, for runtimes that bring their own heads: the detector's backbone
        # (NASNet + FPN) and, in the FPN layout, the NASNet's own taps
        batch, check_batch = (_backbone_input(model, x) for x in (image, check_image))
        parts = [("backbone", model.backbone, "NASNet + FPN")]
        if hasattr(model.backbone, "bottom_up"):
            parts.append(("nasnet", model.backbone.bottom_up, "the NASNet's taps"))
        for name, module, what in parts:
            wrapper = BackboneOutputs(module).eval()
            part_path = os.path.join(output_dir, f"{name}.onnx")
            export_onnx(wrapper, (batch,), part_path, ["image"], wrapper.names,
                        {"image": {0: "batch", 2: "height", 3: "width"}})
            with torch.no_grad():
                features = [f.numpy() for f in wrapper(check_batch)]
            got_part = onnx_session(part_path).run(None, {"image": check_batch.numpy()})
            report[f"{name}_file"] = part_path
            report[f"{name}_max_abs_diff"] = largest_difference(features, got_part)
            log(f"{name}.onnx ({what}: {', '.join(wrapper.names)}) vs eager at {tuple(check_image.shape[-2:])}: "
                f"max abs diff {report[f'{name}_max_abs_diff']:.3g}")
    report["file"] = path
    report["detections"] = int(len(reference[0]))
    report["max_abs_diff"] = largest_difference(reference, got)
    log(f"{FILES[fmt]} vs eager at {tuple(check_image.shape[-2:])} (traced at {tuple(image.shape[-2:])}): "
        f"{len(reference[0])} detections, max abs diff {report['max_abs_diff']:.3g}")
    write_json(os.path.join(output_dir, "metadata.json"), {
        "thing_classes": list(thing_classes or []), "input_format": cfg.INPUT.FORMAT,
        "min_size_test": cfg.INPUT.MIN_SIZE_TEST, "max_size_test": cfg.INPUT.MAX_SIZE_TEST, "outputs": list(OUTPUTS)})
    return report
