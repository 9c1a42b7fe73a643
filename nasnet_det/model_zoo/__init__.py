"""The shipped configs, as ``detectron2.model_zoo`` offers its own.

    from nasnet_det import model_zoo
    model_zoo.list_configs()                        # every shipped config name
    path = model_zoo.get_config_file("nasnet_a_mobile_fpn_frcnn.yaml")
    cfg = model_zoo.get_config("nasnet_a_mobile_fpn_frcnn.yaml")   # add_nasnet_config applied, _BASE_ merged
    model = detectron2.modeling.build_model(cfg)
    lazy = model_zoo.get_config("nasnet_a_mobile_fpn_frcnn.py")    # its LazyConfig twin (LazyConfig.load)
    model = detectron2.config.instantiate(lazy.model)              # the same model

The files themselves are found by :mod:`nasnet_det.config_files` (``configs`` here links to the
repository's ``configs/``; a wheel carries copies).
"""
from __future__ import annotations

from typing import List, Optional

from ..config_files import CONFIG_DIR, get_config_file, list_configs

__all__ = ["CONFIG_DIR", "get_config", "get_config_file", "list_configs"]


def get_config(name: str, opts: Optional[List[str]] = None, register_datasets: bool = False):
    """Shipped config ``name`` with ``opts`` overrides, as Detectron2's ``model_zoo.get_config``:
    a ``.yaml`` is Detectron2's defaults + ``MODEL.NASNET`` keys + the file (its ``_BASE_`` chain), a
    ``.py`` is ``LazyConfig.load`` (overrides as ``key=value``). Needs Detectron2; importing it
    registers the NASNet components."""
    path = get_config_file(name)
    if path.endswith(".py"):
        from detectron2.config import LazyConfig

        from .. import detection  # noqa: F401  (the registries the configs name)

        return LazyConfig.apply_overrides(LazyConfig.load(path), list(opts or []))
    from ..detection.config import get_config as load

    return load(path, opts, register_datasets=register_datasets)
