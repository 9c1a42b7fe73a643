"""Plain PyTorch networks from genotypes (no Detectron2 import here): the layout arithmetic
(:mod:`.layout`, no torch), the network (:mod:`.nasnet`), and the published zoo in timm's model
registry (:mod:`.timm_models`; importing this package registers it)."""
from .layout import NASNetConfig, cell_plan, format_arch, parse_arch, resolve, split_point
from .nasnet import CellStack, NASNet, build_cell_stack, build_nasnet
from .timm_models import (CONFIGS, PUBLISHED, nasnet_a_cifar, nasnet_a_large, nasnet_a_mobile, penultimate_width,
                          pnasnet_5_large, register)

__all__ = ["CONFIGS", "PUBLISHED", "CellStack", "NASNet", "NASNetConfig", "build_cell_stack", "build_nasnet",
           "cell_plan", "format_arch", "nasnet_a_cifar", "nasnet_a_large", "nasnet_a_mobile", "parse_arch",
           "penultimate_width", "pnasnet_5_large", "resolve", "split_point"]

register()
