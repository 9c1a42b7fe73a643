"""Faster R-CNN speed and memory: our NASNet-A Large FPN, the timm adapter a user could write
today, and Detectron2's R50-FPN, in the same run (see nasnet_det.benchmarks.timing for the method)."""
from __future__ import annotations

import functools
from typing import Optional

import torch
from detectron2.config import get_cfg
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone, build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from ..detection.backbone import build_fpn
from ..detection.config import get_config
from .timing import BenchConfig, autocast, compare, write_results


class TimmFeaturesBackbone(Backbone):
    """timm's nasnetalarge(features_only=True) as a Detectron2 backbone (the reference adapter)."""

    def __init__(self, freeze_at: int = 2):
        super().__init__()
        import timm

        self.body = timm.create_model("nasnetalarge", pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
        FrozenBatchNorm2d.convert_frozen_batchnorm(self.body)
        for prefix in ("conv0", "cell_stem_0")[:freeze_at]:  # as MODEL.BACKBONE.FREEZE_AT 2 on ours
            for name, p in self.body.named_parameters():
                if name.startswith(prefix):
                    p.requires_grad_(False)
        info = self.body.feature_info
        self._out_features = [f"stride{r}" for r in info.reduction()]
        self._out_feature_channels = dict(zip(self._out_features, info.channels()))
        self._out_feature_strides = dict(zip(self._out_features, info.reduction()))

    def forward(self, x):
        return dict(zip(self._out_features, self.body(x)))

    def output_shape(self):
        return {n: ShapeSpec(channels=self._out_feature_channels[n], stride=self._out_feature_strides[n])
                for n in self._out_features}


@BACKBONE_REGISTRY.register()
def build_timm_nasnetalarge_fpn_backbone(cfg, input_shape):
    bottom_up = TimmFeaturesBackbone(cfg.MODEL.BACKBONE.FREEZE_AT)
    return build_fpn(cfg, bottom_up)


def build_detector(kind: str, device: str = "cpu"):
    opts = ["MODEL.DEVICE", device, "MODEL.NASNET.DROP_PATH_KEEP_PROB", "1.0"]  # timm has no drop path
    if kind == "r50_fpn":
        from detectron2 import model_zoo

        cfg = get_cfg()
        cfg.merge_from_file(model_zoo.get_config_file("COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml"))
        cfg.merge_from_list(["MODEL.DEVICE", device])
    elif kind == "timm_adapter_fpn":
        cfg = get_config("nasnet_a_large_fpn_frcnn.yaml", opts + ["MODEL.BACKBONE.NAME", "build_timm_nasnetalarge_fpn_backbone"],
                         register_datasets=False)
    elif kind == "ours_paper":
        cfg = get_config("nasnet_a_large_frcnn.yaml", opts, register_datasets=False)
    elif kind in ("ours_fpn", "ours_fpn_checkpointed"):
        cfg = get_config("nasnet_a_large_fpn_frcnn.yaml", opts + ["MODEL.NASNET.ACTIVATION_CHECKPOINTING",
                                                                  str(kind.endswith("checkpointed"))], register_datasets=False)
    else:
        raise ValueError(kind)
    return build_model(cfg)


DETECTORS = {
    "R50-FPN (detectron2)": functools.partial(build_detector, "r50_fpn"),
    "timm nasnetalarge adapter + FPN": functools.partial(build_detector, "timm_adapter_fpn"),
    "ours NASNet-A Large FPN": functools.partial(build_detector, "ours_fpn"),
    "ours, activation checkpointing": functools.partial(build_detector, "ours_fpn_checkpointed"),
    "ours NASNet-A Large, paper layout": functools.partial(build_detector, "ours_paper"),
}


def prepare_detector_batch(model, cfg: BenchConfig, device):
    model = model.to(device)
    h, w = cfg.size, cfg.width or cfg.size
    g = torch.Generator().manual_seed(0)
    batch = []
    for _ in range(cfg.batch):
        inst = Instances((h, w))
        inst.gt_boxes = Boxes(torch.tensor([[0.1 * w, 0.1 * h, 0.5 * w, 0.6 * h], [0.4 * w, 0.3 * h, 0.9 * w, 0.9 * h]]))
        inst.gt_classes = torch.tensor([1, 5])
        batch.append({"image": torch.randint(0, 256, (3, h, w), generator=g).float().to(device),
                      "instances": inst.to(device), "height": h, "width": w})
    return model, batch


def _shrink(batch):
    inst = Instances((64, 64))
    inst.gt_boxes, inst.gt_classes = Boxes(torch.tensor([[4.0, 4.0, 40.0, 40.0]])), torch.tensor([1])
    return [{"image": batch[0]["image"][:, :64, :64], "instances": inst.to(batch[0]["image"].device), "height": 64, "width": 64}]


def _step(model, batch, mode, cfg: BenchConfig, device):
    with autocast(cfg, device):
        if mode == "forward":
            model.eval()
            with torch.no_grad():
                model([{k: v for k, v in b.items() if k != "instances"} for b in batch])
            return
        model.train()
        with EventStorage(0):
            losses = model(batch)
        sum(losses.values()).backward()
    for p in model.parameters():
        p.grad = None


def benchmark_detector(cfg: BenchConfig, json_path: Optional[str] = None, log=print) -> dict:
    results = compare(DETECTORS, cfg, step=_step, prepare=prepare_detector_batch, shrink=_shrink, log=log)
    h, w = cfg.size, cfg.width or cfg.size
    log(f"Faster R-CNN, batch {cfg.batch}, {h}x{w}, {cfg.device}, {cfg.dtype}, median of {cfg.iters} "
        f"alternating steps after {cfg.warmup} warm-up")
    names = list(DETECTORS)
    adapter = "timm nasnetalarge adapter + FPN"
    log(f"{'model':<34} {'train s/iter':>12} {'infer s/img':>12} {'peak train MiB':>15} {'speed vs timm adapter (train / infer)':>40}")
    for name in names:
        train, infer = results.get("train", {}).get(name), results.get("forward", {}).get(name)
        t = train["seconds_per_step"] if train else float("nan")
        i = infer["seconds_per_step"] / cfg.batch if infer else float("nan")
        peak = (train or {}).get("peak_bytes")
        ta = results.get("train", {}).get(adapter, {}).get("seconds_per_step", float("nan"))
        ia = results.get("forward", {}).get(adapter, {}).get("seconds_per_step", float("nan")) / cfg.batch
        log(f"{name:<34} {t:>12.3f} {i:>12.3f} {(peak or float('nan')) / 2**20:>15.0f} {ta / t:>19.2f}x / {ia / i:.2f}x")
    train = results.get("train", {})
    if all(train.get(n, {}).get("peak_bytes") for n in names[2:4]):
        ratio = train[names[3]]["peak_bytes"] / train[names[2]]["peak_bytes"]
        log(f"activation checkpointing: peak training memory x{ratio:.2f} of ours without it")
    if json_path:
        write_results(json_path, cfg, results)
    return results
