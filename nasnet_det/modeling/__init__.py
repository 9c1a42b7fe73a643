"""Plain PyTorch networks from genotypes (no Detectron2 import here). Importing it registers the
published networks in timm's model registry (:mod:`.timm_models`)."""
from .nasnet import (CONFIGS, PUBLISHED, CellStack, NASNet, NASNetConfig, build_cell_stack, build_nasnet, cell_plan,
                     format_arch, nasnet_a_cifar, nasnet_a_large, nasnet_a_mobile, parse_arch, pnasnet_5_large,
                     split_point)

__all__ = ["CONFIGS", "PUBLISHED", "CellStack", "NASNet", "NASNetConfig", "build_cell_stack", "build_nasnet",
           "cell_plan", "format_arch", "nasnet_a_cifar", "nasnet_a_large", "nasnet_a_mobile", "parse_arch",
           "pnasnet_5_large", "split_point"]

from . import timm_models  # noqa: E402

timm_models.register()
