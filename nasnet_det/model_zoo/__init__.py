"""The shipped configs, as ``detectron2.model_zoo`` offers its own.

    from nasnet_det import model_zoo
    model_zoo.list_configs()                        # every shipped config name
    path = model_zoo.get_config_file("nasnet_a_mobile_fpn_frcnn.yaml")
    cfg = model_zoo.get_config("nasnet_a_mobile_fpn_frcnn.yaml")   # add_nasnet_config applied, _BASE_ merged
    model = detectron2.modeling.build_model(cfg)

The repository keeps them in ``configs/`` (the layout Detectron2 users know); ``configs`` here links
there, and a built wheel carries the files themselves, so an installed package finds them in any
directory.
"""
from __future__ import annotations

import os
from typing import List, Optional

from ..errors import ConfigError

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def list_configs() -> List[str]:
    """Names of the shipped configs (paths relative to the config folder), sorted."""
    names = []
    for root, _, files in os.walk(CONFIG_DIR, followlinks=True):
        names += [os.path.relpath(os.path.join(root, f), CONFIG_DIR) for f in files if f.endswith(".yaml")]
    return sorted(names)


def get_config_file(name: str) -> str:
    """The path of shipped config ``name`` (e.g. ``nasnet_a_large_frcnn.yaml``)."""
    path = os.path.join(CONFIG_DIR, name)
    if not name or not os.path.isfile(path):
        raise ConfigError(f"{name!r} is not a shipped config; shipped: {', '.join(list_configs())}")
    return path


def get_config(name: str, opts: Optional[List[str]] = None, register_datasets: bool = False):
    """Detectron2's defaults + ``MODEL.NASNET`` keys + shipped config ``name`` (its ``_BASE_`` chain)
    + ``opts`` overrides. Needs Detectron2; importing it registers the NASNet components."""
    from ..detection.train import get_config as load

    return load(get_config_file(name), opts, register_datasets=register_datasets)
