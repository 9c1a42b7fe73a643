"""Plain PyTorch networks from genotypes (no Detectron2 import here)."""
from .nasnet import (CONFIGS, NASNet, NASNetConfig, build_nasnet, cell_plan, nasnet_a_cifar,
                     nasnet_a_large, nasnet_a_mobile, parse_arch, pnasnet_5_large)

__all__ = ["CONFIGS", "NASNet", "NASNetConfig", "build_nasnet", "cell_plan", "nasnet_a_cifar",
           "nasnet_a_large", "nasnet_a_mobile", "parse_arch", "pnasnet_5_large"]
