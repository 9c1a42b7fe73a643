"""NASNet backbones for Detectron2: the paper's layout and an FPN layout.

The ``MODEL.NASNET`` keys are read in one place, :func:`nasnet_options`; every builder and the
weight check go through it.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn as nn
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool

from ..errors import ConfigError
from ..modeling import NASNet, build_nasnet
from ..modeling import build_cell_stack
from ..modeling.layout import cell_plan, resolve, split_point
from .config import check_renamed_keys

logger = logging.getLogger(__name__)

PAIR_FEATURE = "pair16"  # the (previous, current) state pair at stride 16, concatenated


def nasnet_options(cfg, input_shape: Optional[ShapeSpec] = None) -> dict:
    """The ``net`` of :func:`nasnet_backbone` (``build_nasnet``'s network arguments) that
    ``cfg.MODEL.NASNET`` describes; the input channels come from ``input_shape`` (Detectron2's
    contract), else from the pixel mean. A LazyConfig writes the same dict by hand."""
    c = cfg.MODEL.NASNET
    check_renamed_keys(cfg)
    in_chans = input_shape.channels if input_shape is not None and input_shape.channels else len(cfg.MODEL.PIXEL_MEAN)
    return dict(genotype=c.GENOTYPE, arch=c.ARCH, stem=c.STEM, stem_multiplier=c.STEM_MULTIPLIER,
                skip_reduction_layer_input=c.SKIP_REDUCTION_LAYER_INPUT,
                reductions_in_num_cells=c.REDUCTIONS_IN_NUM_CELLS, drop_path_keep_prob=c.DROP_PATH_KEEP_PROB,
                avg_pool_pad=c.AVG_POOL_PAD, activation_checkpointing=c.ACTIVATION_CHECKPOINTING, in_chans=in_chans)


def _headless(net: Mapping) -> dict:
    """``build_nasnet`` arguments for ``net`` without a classifier (a LazyConfig passes a DictConfig)."""
    return {**dict(net), "num_classes": 0, "dense_dropout_keep_prob": 1.0}


def nasnet_width(net: Mapping) -> int:
    """Channels of the last cell of ``net`` (the paper layout's second stage output, F of N@F)."""
    genotype, layout = resolve(**_headless(net))
    return cell_plan(layout, genotype)[-1].out_channels


def convert_norm(module: nn.Module, norm: str) -> nn.Module:
    """BatchNorm2d -> the norm Detectron2 calls ``norm`` ("BN", "FrozenBN" or "SyncBN")."""
    if norm == "BN":
        return module
    if norm == "FrozenBN":
        return FrozenBatchNorm2d.convert_frozen_batchnorm(module)
    if norm == "SyncBN":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    raise ConfigError(f"MODEL.NASNET norm must be BN, FrozenBN or SyncBN, got {norm!r}")


class NASNetBackbone(Backbone):
    """A NASNet as a Detectron2 backbone.

    Output features: ``stride<N>`` taps (ReLU'd output of the last cell at stride N) and/or
    ``pair16``, the paper's RPN input: the last two cell outputs of a network that ends at stride
    16, concatenated (:func:`build_nasnet_backbone` builds it so; the rest of the NASNet runs per
    ROI in :class:`~nasnet_det.detection.roi_heads.NASNetROIHeads`).
    """

    def __init__(self, net: NASNet, out_features: List[str], freeze_at: int = 0):
        super().__init__()
        taps = {f"stride{f['reduction']}": f for f in net.feature_info}
        unknown = [f for f in out_features if f != PAIR_FEATURE and f not in taps]
        if not out_features or unknown:
            raise ConfigError(f"MODEL.NASNET.OUT_FEATURES: unknown {unknown or out_features}; "
                              f"this network has {[PAIR_FEATURE] + list(taps)}")
        self.net = net
        self._out_features = list(out_features)
        self._tap_cells = {name: taps[name]["cell"] for name in out_features if name != PAIR_FEATURE}
        self._out_feature_channels = {n: taps[n]["num_chs"] for n in self._tap_cells}
        self._out_feature_strides = {n: taps[n]["reduction"] for n in self._tap_cells}
        self._last_cell = None
        if PAIR_FEATURE in out_features:
            self._last_cell = net.cell_names[-1]
            self._out_feature_channels[PAIR_FEATURE] = sum(net.plan[n].out_channels for n in net.cell_names[-2:])
            self._out_feature_strides[PAIR_FEATURE] = net.plan[self._last_cell].stride
        self.freeze(freeze_at)

    def freeze(self, freeze_at: int) -> None:
        """Fix the first ``freeze_at`` units of [stem, cell_stem_0, ...] (weights and BN)."""
        units = [("stem", self.net.stem)] + [(n, self.net.cells[n]) for n in self.net.cell_names]
        if not 0 <= freeze_at <= len(units):
            raise ConfigError(f"MODEL.BACKBONE.FREEZE_AT {freeze_at}: this backbone has {len(units)} units "
                              f"(stem, {', '.join(self.net.cell_names[:2])}, ...); give 0 (train all) to {len(units)}")
        for name, unit in units[:freeze_at]:
            for p in unit.parameters():
                p.requires_grad_(False)
            frozen = FrozenBatchNorm2d.convert_frozen_batchnorm(unit)
            if name == "stem":
                self.net.stem = frozen
            else:
                self.net.cells[name] = frozen

    @property
    def size_divisibility(self) -> int:
        # Any size works with 'SAME' padding; FPN's top-down adds need each level to be exactly half
        # the one below, which padding the image to a multiple of the coarsest stride guarantees.
        return max(self._out_feature_strides.values()) if len(self._out_features) > 1 else 0

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        taps, states = self.net.forward_taps(x, list(self._tap_cells.values()), last_cell=self._last_cell)
        out = {name: taps[cell] for name, cell in self._tap_cells.items()}
        if self._last_cell is not None:
            out[PAIR_FEATURE] = torch.cat(states[-2:], dim=1)  # raw states: the second stage ReLUs itself
        return out


def nasnet_backbone(*, net: Mapping, out_features: Sequence[str], norm: str = "BN", freeze_at: int = 0) -> NASNetBackbone:
    """The NASNet ``net`` describes (:func:`nasnet_options`' keys) as a backbone with ``out_features``:
    stride taps (the FPN layout's bottom-up), or ``pair16`` (the paper layout's first stage, built up
    to the last stride-16 cell). The YAML builders and the LazyConfigs (``configs/common``) both
    build through here."""
    options = _headless(net)
    last_cell = split_point(*resolve(**options)) if PAIR_FEATURE in out_features else None
    return NASNetBackbone(convert_norm(build_nasnet(**options, last_cell=last_cell), norm), list(out_features), freeze_at)


def nasnet_second_stage(*, net: Mapping, norm: str = "FrozenBN") -> nn.Module:
    """The paper layout's second stage: the cells of ``net`` after the first stage's last one
    (``res5`` of :class:`~nasnet_det.detection.roi_heads.NASNetROIHeads`)."""
    return convert_norm(build_cell_stack(**_headless(net)), norm)


@BACKBONE_REGISTRY.register()
def build_nasnet_backbone(cfg, input_shape: ShapeSpec) -> NASNetBackbone:
    """The paper's layout (TF Object Detection API): NASNet up to the last stride-16 cell, built
    alone (the second stage builds the rest)."""
    c = cfg.MODEL.NASNET
    if cfg.MODEL.ROI_HEADS.NAME == "NASNetROIHeads" and PAIR_FEATURE not in c.OUT_FEATURES:
        raise ConfigError(f"MODEL.NASNET.OUT_FEATURES {list(c.OUT_FEATURES)}: the paper layout's second stage "
                          f"(NASNetROIHeads) reads {PAIR_FEATURE!r}; keep OUT_FEATURES ['{PAIR_FEATURE}'], or use the FPN "
                          "layout (Base-NASNet-FPN.yaml) for stride taps")
    return nasnet_backbone(net=nasnet_options(cfg, input_shape), out_features=c.OUT_FEATURES, norm=c.NORM,
                           freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)


@BACKBONE_REGISTRY.register()
def build_nasnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """NASNet taps at strides 4/8/16/32 into Detectron2's FPN (use with StandardROIHeads)."""
    c = cfg.MODEL.NASNET
    bottom_up = nasnet_backbone(net=nasnet_options(cfg, input_shape), out_features=c.OUT_FEATURES, norm=c.NORM,
                                freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)
    return build_fpn(cfg, bottom_up)


def build_fpn(cfg, bottom_up: Backbone) -> FPN:
    """Detectron2's FPN (with its P6 max pool) over ``bottom_up``, as ``cfg.MODEL.FPN`` says: the one
    place our detectors, the detection reward's supernet and the timm baseline build it."""
    return FPN(bottom_up=bottom_up, in_features=cfg.MODEL.FPN.IN_FEATURES, out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
               norm=cfg.MODEL.FPN.NORM, top_block=LastLevelMaxPool(), fuse_type=cfg.MODEL.FPN.FUSE_TYPE)
