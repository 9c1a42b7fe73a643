"""The shipped configs, as ``detectron2.model_zoo`` offers its own.

    from nasnet_det import model_zoo
    model_zoo.list_configs()                        # every shipped config name
    path = model_zoo.get_config_file("nasnet_a_mobile_fpn_frcnn.yaml")
    cfg = model_zoo.get_config("nasnet_a_mobile_fpn_frcnn.yaml")   # add_nasnet_config applied, _BASE_ merged
    model = detectron2.modeling.build_model(cfg)

The files themselves are found by :mod:`nasnet_det.config_files` (``configs`` here links to the
repository's ``configs/``; a wheel carries copies).
"""
from __future__ import annotations

from typing import List, Optional

from ..config_files import CONFIG_DIR, get_config_file, list_configs

__all__ = ["CONFIG_DIR", "get_config", "get_config_file", "list_configs"]


def get_config(name: str, opts: Optional[List[str]] = None, register_datasets: bool = False):
    """Detectron2's defaults + ``MODEL.NASNET`` keys + shipped config ``name`` (its ``_BASE_`` chain)
    + ``opts`` overrides. Needs Detectron2; importing it registers the NASNet components."""
    from ..detection.config import get_config as load

    return load(get_config_file(name), opts, register_datasets=register_datasets)
