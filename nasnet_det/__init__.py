"""nasnet_det: NASNet cells as data, networks from genotypes, and their transfer to Detectron2.

Pipeline: search -> genotype (:mod:`nasnet_det.genotypes`) -> network (:mod:`nasnet_det.modeling`)
-> pretrain -> detection (:mod:`nasnet_det.detection`).

Importing the package imports neither Detectron2 nor Ray, so the networks, the search's worker
processes and pretraining start fast. ``import nasnet_det.detection`` (or using
``nasnet_det.add_nasnet_config``) registers the backbones and ROI heads in Detectron2.
"""
from . import genotypes
from .errors import UserError
from .modeling import (NASNet, NASNetConfig, build_nasnet, nasnet_a_cifar, nasnet_a_large,
                       nasnet_a_mobile, pnasnet_5_large)

__version__ = "0.1.0"
__all__ = ["add_nasnet_config", "genotypes", "NASNet", "NASNetConfig", "UserError", "build_nasnet", "nasnet_a_cifar",
           "nasnet_a_large", "nasnet_a_mobile", "pnasnet_5_large"]


def __getattr__(name):
    if name == "add_nasnet_config":  # the Detectron2 side, imported (and registered) on first use
        from .detection import add_nasnet_config

        return add_nasnet_config
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
