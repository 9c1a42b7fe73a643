"""nasnet_det: NASNet cells as data, networks from genotypes, and their transfer to Detectron2.

Pipeline: search -> genotype (:mod:`nasnet_det.genotypes`) -> network (:mod:`nasnet_det.modeling`)
-> pretrain -> detection.
"""
from . import genotypes
from .modeling import (NASNet, NASNetConfig, build_nasnet, nasnet_a_cifar, nasnet_a_large,
                       nasnet_a_mobile, pnasnet_5_large)

__version__ = "0.1.0"
__all__ = ["genotypes", "NASNet", "NASNetConfig", "build_nasnet", "nasnet_a_cifar", "nasnet_a_large",
           "nasnet_a_mobile", "pnasnet_5_large"]
