"""nasnet_det: NASNet cells as data, networks from genotypes, and their transfer to Detectron2.

Pipeline: search -> genotype (:mod:`nasnet_det.genotypes`) -> network (:mod:`nasnet_det.modeling`)
-> pretrain -> detection (:mod:`nasnet_det.detection`).

Importing the package imports the data layer (genotypes, errors) and the networks, which registers
the published ones in timm's model registry, so timm's own idiom works in either import order:
``import timm, nasnet_det; timm.create_model("nasnet_a_mobile")``. That costs torch and timm on
``import nasnet_det`` (and so on ``import nasnet_det.genotypes``, which runs this file first):
the timm idiom wins over a torch-free package import (``docs/design.md``, "Kept on purpose"). The
data layer's modules themselves still import no torch (the layering test reads their imports).
Detectron2 and Ray are never imported here: ``import nasnet_det.detection`` (or using
``nasnet_det.add_nasnet_config``) registers the backbones and ROI heads in Detectron2.
"""
from importlib import import_module

from . import genotypes
from .errors import UserError
from .modeling import (NASNet, NASNetConfig, build_nasnet, nasnet_a_cifar, nasnet_a_large, nasnet_a_mobile,  # noqa: F401
                       pnasnet_5_large)  # importing .modeling registers the published networks in timm

__version__ = "0.3.0"

# name -> module that defines it, imported on first use (PEP 562): Detectron2 only when asked for
_LAZY = {"add_nasnet_config": ".detection"}
__all__ = ["genotypes", "UserError", "NASNet", "NASNetConfig", "build_nasnet", "nasnet_a_cifar", "nasnet_a_large",
           "nasnet_a_mobile", "pnasnet_5_large", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
