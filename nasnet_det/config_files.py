"""The shipped Detectron2 configs as files: where they are and what they are called (no Detectron2
import). :mod:`nasnet_det.model_zoo` is the public face (``get_config`` loads one); the detection
loader resolves names here, so neither imports the other.

The repository keeps them in ``configs/`` (the layout Detectron2 users know);
``nasnet_det/model_zoo/configs`` links there, and a built wheel carries the files themselves, so an
installed package finds them in any directory.
"""
from __future__ import annotations

import os
from typing import List

from .errors import ConfigError

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_zoo", "configs")


# YAML configs (Detectron2's CfgNode, tools/train_net.py) and their LazyConfig twins (Python,
# Detectron2's tools/lazyconfig_train_net.py); configs/common/ holds the LazyConfigs' shared parts
CONFIG_SUFFIXES = (".yaml", ".py")


def list_configs() -> List[str]:
    """Names of the shipped configs (paths relative to the config folder), sorted."""
    names = []
    for root, dirs, files in os.walk(CONFIG_DIR, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        names += [os.path.relpath(os.path.join(root, f), CONFIG_DIR) for f in files if f.endswith(CONFIG_SUFFIXES)]
    return sorted(names)


def get_config_file(name: str) -> str:
    """The path of shipped config ``name`` (e.g. ``nasnet_a_large_frcnn.yaml``)."""
    path = os.path.join(CONFIG_DIR, name)
    # names resolve inside the zoo only: '/etc/hostname' or '../Makefile' is not a shipped config
    if not name or name not in list_configs() or not os.path.isfile(path):
        raise ConfigError(f"{name!r} is not a shipped config; shipped: {', '.join(list_configs())}")
    return path
