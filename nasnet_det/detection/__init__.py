"""Detectron2 integration. Importing this module registers the backbones and ROI heads."""
from .backbone import NASNetBackbone, build_nasnet_backbone, build_nasnet_fpn_backbone
from .config import add_nasnet_config
from .datasets import DatasetError, ensure_registered, register_cfg_datasets
from .roi_heads import NASNetROIHeads

__all__ = ["NASNetBackbone", "build_nasnet_backbone", "build_nasnet_fpn_backbone", "add_nasnet_config",
           "DatasetError", "ensure_registered", "register_cfg_datasets", "NASNetROIHeads"]
