"""The NASNet backbones' config keys (:func:`add_nasnet_config`) and config loading: a shipped name or a
path, read safely with its ``_BASE_`` chain, merged over Detectron2's defaults (:func:`get_config`)."""
from __future__ import annotations

import os
from typing import List, Optional

from detectron2.config import CfgNode
from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from ..config_files import get_config_file, list_configs
from ..errors import ConfigError, one_line
from .datasets import register_cfg_datasets


def add_nasnet_config(cfg: CN) -> CN:
    """Add ``cfg.MODEL.NASNET.*`` (call before merging a YAML that uses them)."""
    cfg.MODEL.NASNET = CN()
    # A published genotype name (nasnet_a, pnasnet_5, amoebanet_a, darts_v2, ...) or a .json path,
    # e.g. the genotype.json a search wrote.
    cfg.MODEL.NASNET.GENOTYPE = "nasnet_a"
    # The paper's "N@F": N = normal cells per stage, F = penultimate width (6@4032 = Large).
    cfg.MODEL.NASNET.ARCH = "6@4032"
    cfg.MODEL.NASNET.STEM = "imagenet"
    cfg.MODEL.NASNET.STEM_MULTIPLIER = 3.0
    cfg.MODEL.NASNET.SKIP_REDUCTION_LAYER_INPUT = True
    # PNASNet counts its reduction cells in num_cells.
    cfg.MODEL.NASNET.REDUCTIONS_IN_NUM_CELLS = False
    # ScheduledDropPath while training (TF detection: 0.7 for NASNet-A Large); the keep
    # probability falls linearly to this value over DROP_PATH_SCHEDULE_ITERS (0 = SOLVER.MAX_ITER).
    cfg.MODEL.NASNET.DROP_PATH_KEEP_PROB = 1.0
    cfg.MODEL.NASNET.DROP_PATH_SCHEDULE_ITERS = 0
    # "exclude": TF 'SAME' average pooling; "include": timm's port (padded zeros averaged).
    cfg.MODEL.NASNET.AVG_POOL_PAD = "exclude"
    # Recompute each cell in the backward pass (less memory, more compute).
    cfg.MODEL.NASNET.ACTIVATION_CHECKPOINTING = False
    # Renamed: the backbones honour Detectron2's own MODEL.BACKBONE.FREEZE_AT (the first N units of
    # [stem, cell_stem_0, cell_stem_1, cell_0, ...] fixed, BN frozen; 2 = up to stride 4, as its
    # ResNets). Left at None; a config that sets it is refused with one line naming the new key.
    cfg.MODEL.NASNET.FREEZE_AT = None
    # Normalisation of the backbone and of the second stage: "BN", "FrozenBN" or "SyncBN".
    cfg.MODEL.NASNET.NORM = "BN"
    cfg.MODEL.NASNET.HEAD_NORM = "FrozenBN"
    # Paper layout: the backbone ends at the last stride-16 cell and outputs the
    # (previous, current) state pair as one map, "pair16". FPN layout: taps at strides 4-32.
    cfg.MODEL.NASNET.OUT_FEATURES = ["pair16"]
    return cfg


def shipped_configs() -> List[str]:
    """The shipped YAML configs (what our tools and Detectron2's CfgNode read; the ``.py`` twins are LazyConfigs)."""
    return [name for name in list_configs() if name.endswith(".yaml")]


def resolve_config(name: str) -> str:
    """A path, or the name of a shipped config (:mod:`nasnet_det.model_zoo`)."""
    if os.path.isfile(name):
        return name
    if name in list_configs():
        return get_config_file(name)
    raise ConfigError(f"config file not found: {name!r} (not a path, nor a shipped config: "
                      f"{', '.join(shipped_configs())})")


def check_yaml(path: str, chain: tuple = ()) -> None:
    """Read ``path`` and its ``_BASE_`` chain with ``yaml.safe_load``: a tag that builds Python objects
    (``!!python/object/apply``), invalid YAML or a ``_BASE_`` loop is one :class:`ConfigError`."""
    import yaml

    if path in chain:
        raise ConfigError(f"{chain[-1]}: _BASE_ loop through {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.constructor.ConstructorError as e:
        raise ConfigError(f"{path}: refusing a YAML tag that builds Python objects ({e.problem}): a config is "
                          "data (docs/security.md)") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({one_line(e)})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config {path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {'an empty config' if data is None else 'not a mapping of config keys'}; a config "
                          "holds Detectron2 keys (MODEL:, SOLVER:, ...) and may start from _BASE_: "
                          "Base-NASNet-FPN.yaml")
    base = data.get("_BASE_")
    if isinstance(base, str) and "://" not in base:
        base = os.path.expanduser(base)
        check_yaml(base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base), chain + (path,))


def get_config(config_file: str, opts: Optional[List[str]] = None, register_datasets: bool = True) -> CfgNode:
    """Detectron2 defaults + ``MODEL.NASNET`` keys + the YAML (with its ``_BASE_`` chain) + overrides."""
    path = resolve_config(config_file)
    if path.endswith(".py"):
        raise ConfigError(f"{config_file} is a LazyConfig (Python): train it with Detectron2's "
                          "tools/lazyconfig_train_net.py, or give its YAML twin "
                          f"({os.path.basename(path)[:-3]}.yaml) here")
    check_yaml(path)  # before Detectron2 reads it: its loader falls back to yaml.unsafe_load
    cfg = add_nasnet_config(get_cfg())
    try:
        cfg.merge_from_file(path)
    except KeyError as e:
        raise ConfigError(f"{path}: {e.args[0] if e.args else e} (is it a key of MODEL.NASNET or Detectron2?)") from None
    options = [o for o in (opts or []) if isinstance(o, str) and o.startswith("--")]
    if options:  # Detectron2's parser hands everything after the first KEY VALUE to the overrides
        raise ConfigError(f"{options[0]} after the KEY VALUE overrides is read as one of them: put the options first "
                          f"(train_net.py --config ... {options[0]} KEY VALUE ...)")
    try:
        cfg.merge_from_list(list(opts or []))
    except (KeyError, AssertionError, ValueError) as e:
        raise ConfigError(f"command-line override: {e}") from None
    check_renamed_keys(cfg)
    check_solver(cfg)
    if register_datasets:
        register_cfg_datasets(cfg)
    return cfg


def check_solver(cfg) -> None:
    """The solver's counts and rates, checked where the config is read (Detectron2 fails deep in its
    scheduler, or trains nothing, on a negative MAX_ITER or batch)."""
    s = cfg.SOLVER
    for key, least in (("MAX_ITER", 1), ("IMS_PER_BATCH", 1), ("CHECKPOINT_PERIOD", 1)):
        value = s.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ConfigError(f"SOLVER.{key} must be an integer of at least {least}, got {value!r}")
    if not (isinstance(s.BASE_LR, (int, float)) and s.BASE_LR > 0 and s.BASE_LR < float("inf")):
        raise ConfigError(f"SOLVER.BASE_LR must be a positive number, got {s.BASE_LR!r}")


def check_device(cfg) -> None:
    """``MODEL.DEVICE cuda`` on a machine without one is one line (torch's is a driver traceback)."""
    import torch

    if str(cfg.MODEL.DEVICE).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"MODEL.DEVICE {cfg.MODEL.DEVICE}: no CUDA device on this machine; use MODEL.DEVICE cpu")


def check_renamed_keys(cfg) -> None:
    """A key of ours that Detectron2 has under its own name is refused, not silently ignored."""
    old = cfg.MODEL.NASNET.get("FREEZE_AT")
    if old is not None:
        raise ConfigError(f"MODEL.NASNET.FREEZE_AT {old} is no longer read: set Detectron2's own key instead, "
                          f"MODEL.BACKBONE.FREEZE_AT {old}")


def check_trainable(cfg) -> None:
    """Refuse a training run that cannot work: frozen BatchNorm with no weights to load.

    FrozenBN (and the frozen units of FREEZE_AT) keep the statistics they start with; from random
    initialisation those are meaningless and the loss diverges within a few iterations.
    """
    if cfg.MODEL.WEIGHTS:
        return
    c = cfg.MODEL.NASNET
    frozen = [f"MODEL.NASNET.NORM {c.NORM!r}"] if c.NORM == "FrozenBN" else []
    if c.HEAD_NORM == "FrozenBN" and cfg.MODEL.ROI_HEADS.NAME == "NASNetROIHeads":
        frozen.append(f"MODEL.NASNET.HEAD_NORM {c.HEAD_NORM!r}")
    if cfg.MODEL.BACKBONE.FREEZE_AT > 0:
        frozen.append(f"MODEL.BACKBONE.FREEZE_AT {cfg.MODEL.BACKBONE.FREEZE_AT}")
    if frozen:
        raise ConfigError(f"{' and '.join(frozen)} with MODEL.WEIGHTS '' would train from random, frozen BatchNorm "
                          "statistics and diverge: give MODEL.WEIGHTS (tools/convert_pretrained.py or tools/pretrain.py "
                          "backbone.pth), or train from scratch with a *_scratch.yaml config (NORM BN or SyncBN, "
                          "FREEZE_AT 0)")
