"""Inference fast path: fold each BatchNorm into the convolution before it.

``fuse_batch_norm(model)`` rewrites an eval-mode NASNet (or any module built from this package's
ops) in place: conv -> BN becomes one conv with a bias, and the BN an identity. Outputs equal the
unfused model's up to float rounding; training the fused model is meaningless (the statistics are
gone), so it must be in eval mode.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError
from .ops import ConvBN, ConvPairBN, FactorizedReduction, Pool, SeparableUnit


def _fold(convs, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` into ``convs``, whose outputs are concatenated along channels before it."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    start = 0
    for conv in convs:
        end = start + conv.out_channels
        with torch.no_grad():
            conv.weight.mul_(scale[start:end].reshape(-1, 1, 1, 1))
            bias = shift[start:end].clone()
            if conv.bias is not None:
                bias += conv.bias * scale[start:end]
            conv.bias = nn.Parameter(bias)
        start = end


def fuse_batch_norm(model: nn.Module) -> nn.Module:
    """Fold BatchNorm into the preceding convs of ``model`` (in eval mode); returns ``model``."""
    if model.training:
        raise ConfigError("fuse_batch_norm folds the running statistics: call model.eval() first")
    for module in list(model.modules()):
        pairs = []
        if isinstance(module, ConvBN):
            pairs = [((module.conv,), "bn")]
        elif isinstance(module, ConvPairBN):
            pairs = [((module.conv_kx1,), "bn")]
        elif isinstance(module, SeparableUnit):
            pairs = [((module.pointwise,), "bn")]
        elif isinstance(module, Pool) and module.conv is not None:
            pairs = [((module.conv,), "bn")]
        elif isinstance(module, FactorizedReduction):
            pairs = [((module.conv_path1, module.conv_path2), "bn")]
        elif isinstance(module, nn.Sequential) and isinstance(getattr(module, "conv", None), nn.Conv2d) \
                and isinstance(getattr(module, "bn", None), nn.BatchNorm2d):
            pairs = [((module.conv,), "bn")]  # the stem
        for convs, name in pairs:
            bn = getattr(module, name)
            if isinstance(bn, nn.BatchNorm2d):
                _fold(convs, bn)
                setattr(module, name, nn.Identity())
    return model
