"""A detector's latency as parts (the ``detector`` network of :mod:`nasnet_det.search.latency`).

``detector:CONFIG`` is the Faster R-CNN FPN that a shipped (or given) YAML config builds around a
cell: its parts are the image preprocessing (normalise, pad), the NASNet backbone's parts (stem,
cells, glue: the classifier's, without pool and classifier), the FPN (laterals, outputs, top-down,
P6) and the heads (RPN, ROI box head, box postprocessing and rescaling). Each is keyed by what it
computes and the shapes it reads, so one table serves every cell: the FPN's key changes with the
widths the cell gives it, the heads' key does not (they read 256-channel FPN levels whatever the
cell). The heads are timed at random initialisation; a trained detector's NMS and box count depend
on the image: the timed RPN proposes its anchors and keeps the top-k unsuppressed (:func:`_config`,
:func:`build_detector`), so the ROI head's load is a trained detector's on a busy image; the final
per-class NMS of up to 100 boxes is not timed (no box passes the score threshold).
"""
from __future__ import annotations

import copy
import functools
import hashlib
from typing import Dict, List, Tuple

import torch
from detectron2.modeling import GeneralizedRCNN, build_proposal_generator, build_roi_heads
from detectron2.structures import ImageList

from ..search.latency import LatencyError, Part, cells_and_filters, module_key, module_settings, net_parts
from .backbone import build_fpn, nasnet_backbone, nasnet_options
from .config import get_config

DEFAULT_CONFIG = "nasnet_a_mobile_fpn_frcnn.yaml"


@functools.lru_cache(maxsize=None)
def _config(spec: str):
    # RPN.NMS_THRESH 1.0 (and zeroed output layers, build_detector): a trained RPN keeps POST_NMS_TOPK_TEST
    # proposals of a real image, a random one a handful (its boxes blow up, clip to the image and merge);
    # the timed RPN proposes its anchors unsuppressed, so the ROI head always sees the top-k, as in use,
    # and no part's time depends on the random weights
    cfg = get_config(spec or DEFAULT_CONFIG, ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "MODEL.RPN.NMS_THRESH", "1.0"],
                     register_datasets=False)
    if cfg.MODEL.BACKBONE.NAME != "build_nasnet_fpn_backbone" or cfg.MODEL.META_ARCHITECTURE != "GeneralizedRCNN":
        raise LatencyError(f"latency network detector:{spec}: the latency model times the FPN layout "
                           f"(build_nasnet_fpn_backbone in a GeneralizedRCNN), this config has "
                           f"{cfg.MODEL.BACKBONE.NAME} in {cfg.MODEL.META_ARCHITECTURE}; use an *_fpn_frcnn config")
    cfg.freeze()  # read once per spec (the check and every detector built), shared: never changed
    return cfg


def latency_check(spec: str) -> None:
    from ..errors import ConfigError

    try:
        _config(spec)
    except ConfigError as e:
        raise LatencyError(f"latency network detector:{spec}: {e}") from None


def build_detector(genotype, arch: str, spec: str = "", device: str = "cpu") -> GeneralizedRCNN:
    """The config's detector around ``genotype`` at ``arch`` (read as NASNet-A's N@F, as the
    classifier's), in eval mode, at random initialisation."""
    cfg = _config(spec)
    num_cells, filters = cells_and_filters(arch)
    net = {**nasnet_options(cfg), "genotype": genotype, "arch": None, "num_cells": num_cells,
           "num_conv_filters": filters, "drop_path_keep_prob": 1.0}
    bottom_up = nasnet_backbone(net=net, out_features=cfg.MODEL.NASNET.OUT_FEATURES, norm=cfg.MODEL.NASNET.NORM,
                                freeze_at=0)
    backbone = build_fpn(cfg, bottom_up)
    model = GeneralizedRCNN(backbone=backbone, proposal_generator=build_proposal_generator(cfg, backbone.output_shape()),
                            roi_heads=build_roi_heads(cfg, backbone.output_shape()), pixel_mean=cfg.MODEL.PIXEL_MEAN,
                            pixel_std=cfg.MODEL.PIXEL_STD, input_format=cfg.INPUT.FORMAT)
    # the RPN's and the box predictor's output layers at zero: proposals are the anchors (top-k kept) and no
    # box passes the score threshold, whatever the random backbone computes
    layers = [getattr(getattr(model.proposal_generator, "rpn_head", None), n, None) for n in ("objectness_logits", "anchor_deltas")]
    layers += [getattr(getattr(model.roi_heads, "box_predictor", None), n, None) for n in ("cls_score", "bbox_pred")]
    for layer in layers:
        if layer is not None:
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
    return model.to(device).eval()


def _inputs(size: Tuple[int, int], batch: int, device: str) -> List[dict]:
    g = torch.Generator().manual_seed(0)
    return [{"image": (torch.rand(3, *size, generator=g) * 255).to(device)} for _ in range(batch)]


def _padded(model: GeneralizedRCNN, size: Tuple[int, int]) -> Tuple[int, int]:
    d = model.backbone.size_divisibility
    return tuple(-(-s // d) * d for s in size) if d > 1 else tuple(size)


def _feature_shapes(fpn: torch.nn.Module, x_shape) -> Tuple[Dict[str, torch.Size], Dict[str, torch.Size]]:
    """(the bottom-up's output shapes, the FPN's) by one forward on the meta device."""
    meta = copy.deepcopy(fpn).to("meta")
    taps: Dict[str, torch.Size] = {}
    meta.bottom_up.register_forward_hook(lambda m, i, out: taps.update({k: v.shape for k, v in out.items()}))
    with torch.no_grad():
        levels = {k: v.shape for k, v in meta(torch.zeros(x_shape, device="meta")).items()}
    return taps, levels


def _digest(*modules) -> str:
    """What a head computes: its modules' reprs and their settings (top-k dicts, thresholds)."""
    text = "".join(repr(m) + module_settings(m, containers=True) for m in modules)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _shape_key(shapes: Dict[str, torch.Size]) -> str:
    return ",".join(f"{k}={'x'.join(map(str, s))}" for k, s in shapes.items())


def latency_parts(genotype, arch: str, size: Tuple[int, int], batch: int, device: str, spec: str = "") -> List[Part]:
    model = build_detector(genotype, arch, spec, device)
    padded = _padded(model, size)
    inputs = _inputs(size, batch, device)
    fpn, bottom_up = model.backbone, model.backbone.bottom_up
    parts = []

    def preprocess():
        return model.preprocess_image(inputs)
    parts.append(Part(f"preprocess:{batch}x3x{size[0]}x{size[1]}:{padded[0]}x{padded[1]}", preprocess))
    parts += net_parts(bottom_up.net, padded, batch, device, head=False)

    taps, levels = _feature_shapes(fpn, (batch, 3, *padded))
    features = {k: torch.randn(s, device=device) for k, s in taps.items()}

    class Fixed(torch.nn.Module):  # the bottom-up's output, so that the FPN alone is timed
        def forward(self, x):
            return features

    top = copy.copy(fpn)
    top._modules = dict(fpn._modules, bottom_up=Fixed())
    image = torch.zeros(batch, 3, *padded, device=device)

    def run_fpn():
        with torch.no_grad():
            return top(image)
    lateral = [m for n, m in fpn.named_children() if n != "bottom_up"]
    parts.append(Part(module_key(torch.nn.ModuleList(lateral), list(features.values())), run_fpn))

    pyramid = {k: torch.randn(s, device=device) for k, s in levels.items()}
    images = ImageList(torch.zeros(batch, 3, *padded, device=device), [tuple(size)] * batch)

    def heads():
        with torch.no_grad():
            proposals, _ = model.proposal_generator(images, pyramid, None)
            results, _ = model.roi_heads(images, pyramid, proposals, None)
            return GeneralizedRCNN._postprocess(results, inputs, images.image_sizes)
    key = f"heads:{_digest(model.proposal_generator, model.roi_heads)}:{batch}:{size[0]}x{size[1]}:{_shape_key(levels)}"
    parts.append(Part(key, heads))
    return parts


def latency_forward(genotype, arch: str, size: Tuple[int, int], batch: int, device: str, spec: str = ""):
    """One end-to-end ``model(batched_inputs)`` in eval mode: what a user's inference runs."""
    model = build_detector(genotype, arch, spec, device)
    inputs = _inputs(size, batch, device)

    def run():
        with torch.no_grad():
            return model(inputs)
    return run
