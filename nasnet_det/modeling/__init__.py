"""Plain PyTorch networks from genotypes (no Detectron2 import here)."""
from .nasnet import (CONFIGS, PUBLISHED, CellStack, NASNet, NASNetConfig, build_cell_stack, build_nasnet, cell_plan,
                     format_arch, nasnet_a_cifar, nasnet_a_large, nasnet_a_mobile, parse_arch, pnasnet_5_large,
                     split_point)

__all__ = ["CONFIGS", "PUBLISHED", "CellStack", "NASNet", "NASNetConfig", "build_cell_stack", "build_nasnet",
           "cell_plan", "format_arch", "nasnet_a_cifar", "nasnet_a_large", "nasnet_a_mobile", "parse_arch",
           "pnasnet_5_large", "split_point"]
