"""nasnet_det: NASNet cells as data, networks from genotypes, and their transfer to Detectron2.

Pipeline: search -> genotype (:mod:`nasnet_det.genotypes`) -> network (:mod:`nasnet_det.modeling`)
-> pretrain -> detection (:mod:`nasnet_det.detection`).

Importing the package imports only the data layer (genotypes, errors): no torch, no Detectron2, no
Ray, so ``import nasnet_det.genotypes`` stays cheap for tools that only read cells. The networks are
imported on first use (``nasnet_det.NASNet``, ``nasnet_det.nasnet_a_mobile()``, ...);
``import nasnet_det.modeling`` registers them in timm's model registry, and
``import nasnet_det.detection`` (or using ``nasnet_det.add_nasnet_config``) registers the backbones
and ROI heads in Detectron2.
"""
from importlib import import_module

from . import genotypes
from .errors import UserError

__version__ = "0.3.0"

# name -> module that defines it, imported on first use (PEP 562)
_LAZY = {name: ".modeling" for name in ("NASNet", "NASNetConfig", "build_nasnet", "nasnet_a_cifar",
                                         "nasnet_a_large", "nasnet_a_mobile", "pnasnet_5_large")}
_LAZY["add_nasnet_config"] = ".detection"
__all__ = ["genotypes", "UserError", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
