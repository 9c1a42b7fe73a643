"""The ``classifier`` network kind: the NASNet around the cell (stem, cells, pool, classifier), a
sibling of :mod:`nasnet_det.detection.latency` (the ``detector`` kind)."""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn as nn

from ...modeling import build_nasnet
from .parts import cells_and_filters, net_parts
from .table import LatencyError, Part

def classifier_net(genotype, arch: str, size: Tuple[int, int], num_classes: int = 1000, **options) -> nn.Module:
    """The NASNet whose latency is predicted (eval mode, no aux head, no drop path)."""
    num_cells, filters = cells_and_filters(arch)
    return build_nasnet(genotype, num_cells=num_cells, num_conv_filters=filters, num_classes=num_classes,
                        img_size=max(size), aux_head=False, **options).eval()


def latency_check(spec: str) -> None:
    if spec:
        raise LatencyError(f"latency network 'classifier:{spec}': the classifier takes no spec; use 'classifier'")


def latency_parts(genotype, arch: str, size: Tuple[int, int], batch: int, device: str, spec: str = "") -> List[Part]:
    """The classifier's parts: stem, cells, pool and classifier of the NASNet at ``arch``."""
    return net_parts(classifier_net(genotype, arch, size).to(device), size, batch, device)


def latency_forward(genotype, arch: str, size: Tuple[int, int], batch: int, device: str, spec: str = ""):
    net = classifier_net(genotype, arch, size).to(device)
    x = torch.randn(batch, 3, *size, device=device)

    def run():
        with torch.no_grad():
            return net(x)
    return run
