"""NASNet backbones for Detectron2: the paper's layout and an FPN layout."""
from __future__ import annotations

import logging
from typing import Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool

from ..errors import ConfigError
from ..modeling import NASNet, build_nasnet

logger = logging.getLogger(__name__)

PAIR = "pair16"  # the (previous, current) state pair at stride 16, concatenated


def build_nasnet_from_cfg(cfg) -> NASNet:
    """The NASNet that ``cfg.MODEL.NASNET`` describes, without a classifier. Config is read here only."""
    c = cfg.MODEL.NASNET
    return build_nasnet(
        c.GENOTYPE, arch=c.ARCH, stem=c.STEM, stem_multiplier=c.STEM_MULTIPLIER, num_classes=0,
        skip_reduction_layer_input=c.SKIP_REDUCTION_LAYER_INPUT,
        reductions_in_num_cells=c.REDUCTIONS_IN_NUM_CELLS, drop_path_keep_prob=c.DROP_PATH_KEEP_PROB,
        dense_dropout_keep_prob=1.0, avg_pool_pad=c.AVG_POOL_PAD,
        activation_checkpointing=c.ACTIVATION_CHECKPOINTING, in_chans=len(cfg.MODEL.PIXEL_MEAN))


def convert_norm(module: nn.Module, norm: str) -> nn.Module:
    """BatchNorm2d -> the norm Detectron2 calls ``norm`` ("BN", "FrozenBN" or "SyncBN")."""
    if norm == "BN":
        return module
    if norm == "FrozenBN":
        return FrozenBatchNorm2d.convert_frozen_batchnorm(module)
    if norm == "SyncBN":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    raise ConfigError(f"MODEL.NASNET norm must be BN, FrozenBN or SyncBN, got {norm!r}")


def split_point(net: NASNet) -> str:
    """Where the paper's first stage ends: the last cell before the last reduction (stride 16)."""
    return net.feature_info[-2]["module"]


class NASNetBackbone(Backbone):
    """A NASNet as a Detectron2 backbone.

    Output features: ``stride<N>`` taps (ReLU'd output of the last cell at stride N) and/or
    ``pair16``, the paper's RPN input: the last two stride-16 cell outputs concatenated. With
    ``pair16`` the network ends there; the rest runs per ROI in :class:`NASNetROIHeads`.
    """

    def __init__(self, net: NASNet, out_features: List[str], freeze_at: int = 0):
        super().__init__()
        taps = {f"stride{f['reduction']}": f for f in net.feature_info}
        unknown = [f for f in out_features if f != PAIR and f not in taps]
        if not out_features or unknown:
            raise ConfigError(f"MODEL.NASNET.OUT_FEATURES: unknown {unknown or out_features}; "
                             f"this network has {[PAIR] + list(taps)}")
        if PAIR in out_features:
            net.split(split_point(net))
        self.net = net
        self._out_features = list(out_features)
        self._tap_cells = {name: taps[name]["module"] for name in out_features if name != PAIR}
        last = self.net.cell_names[-1]
        pair = [self.net.cells[n].out_channels for n in self.net.cell_names[-2:]]
        self._out_feature_channels = {n: taps[n]["num_chs"] for n in self._tap_cells}
        self._out_feature_strides = {n: taps[n]["reduction"] for n in self._tap_cells}
        if PAIR in out_features:
            self._out_feature_channels[PAIR] = sum(pair)
            self._out_feature_strides[PAIR] = self._stride_of(last)
        cells = [n for n in self._tap_cells.values() if n != "stem"]
        self._last_cell = last if PAIR in out_features else max(cells, key=self.net.cell_names.index)
        self.freeze(freeze_at)

    def _stride_of(self, cell: str) -> int:
        return next(f["reduction"] for f in self.net.feature_info if f["module"] == cell)

    def freeze(self, freeze_at: int) -> None:
        """Fix the first ``freeze_at`` units of [stem, cell_stem_0, ...] (weights and BN)."""
        units = [("stem", self.net.stem)] + [(n, self.net.cells[n]) for n in self.net.cell_names]
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
        states = self.net.forward_stem(x)
        taps = dict.fromkeys(self._tap_cells.values())
        taps["stem"] = states[0]
        end = self.net.cell_names.index(self._last_cell) + 1
        states = self.net.run_cells(states, self.net.cell_names[:end], taps)
        out = {name: (taps[cell] if cell == "stem" else F.relu(taps[cell]))
               for name, cell in self._tap_cells.items()}
        if PAIR in self._out_features:
            out[PAIR] = torch.cat(states[-2:], dim=1)  # raw states: the second stage ReLUs itself
        return out

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {n: ShapeSpec(channels=self._out_feature_channels[n], stride=self._out_feature_strides[n])
                for n in self._out_features}


@BACKBONE_REGISTRY.register()
def build_nasnet_backbone(cfg, input_shape: ShapeSpec) -> NASNetBackbone:
    """The paper's layout (TF Object Detection API): NASNet up to the last stride-16 cell."""
    c = cfg.MODEL.NASNET
    net = convert_norm(build_nasnet_from_cfg(cfg), c.NORM)
    return NASNetBackbone(net, list(c.OUT_FEATURES), c.FREEZE_AT)


@BACKBONE_REGISTRY.register()
def build_nasnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """NASNet taps at strides 4/8/16/32 into Detectron2's FPN (use with StandardROIHeads)."""
    c = cfg.MODEL.NASNET
    bottom_up = NASNetBackbone(convert_norm(build_nasnet_from_cfg(cfg), c.NORM),
                               list(c.OUT_FEATURES), c.FREEZE_AT)
    return FPN(bottom_up=bottom_up, in_features=cfg.MODEL.FPN.IN_FEATURES,
               out_channels=cfg.MODEL.FPN.OUT_CHANNELS, norm=cfg.MODEL.FPN.NORM,
               top_block=LastLevelMaxPool(), fuse_type=cfg.MODEL.FPN.FUSE_TYPE)
