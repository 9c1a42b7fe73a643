"""nasnet_det: NASNet cells as data, networks from genotypes, and their transfer to Detectron2.

Pipeline: search -> genotype (:mod:`nasnet_det.genotypes`) -> network (:mod:`nasnet_det.modeling`)
-> pretrain -> detection.
"""
from . import genotypes
from .modeling import (NASNet, NASNetConfig, build_nasnet, nasnet_a_cifar, nasnet_a_large,
                       nasnet_a_mobile, pnasnet_5_large)

try:  # registers the Detectron2 backbones and ROI heads
    from .detection import add_nasnet_config
except ModuleNotFoundError as e:  # Detectron2 not installed: the networks still work
    if not (e.name or "").startswith("detectron2"):
        raise

__version__ = "0.1.0"
__all__ = ["add_nasnet_config", "genotypes", "NASNet", "NASNetConfig", "build_nasnet", "nasnet_a_cifar", "nasnet_a_large",
           "nasnet_a_mobile", "pnasnet_5_large"]
