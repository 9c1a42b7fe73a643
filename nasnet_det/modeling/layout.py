"""The layout of a NASNet as arithmetic, with no module in it: the config, the paper's "N@F" strings,
the cell plan (every cell's name, kind, widths and stride), the feature taps, the detection split
point and the preprocessing a network expects. The network (:mod:`.nasnet`), the supernet, the
detector and timm's registry all read the layout from here; it imports no torch.

Assembly follows tensorflow/models research/slim/nets/nasnet (nasnet.py, pnasnet.py):

- ImageNet stem: conv0 (3x3, stride 2, VALID) + BN, then two reduction cells ``cell_stem_0/1``
  with filter scaling 1/4 and 1/2. CIFAR stem: one 3x3 conv + BN.
- ``num_cells`` counts the normal cells; reduction cells go before normal cells ``int(n/3)`` and
  ``int(2n/3)`` (NASNet layout). The PNASNet layout counts reduction cells in ``num_cells`` and runs
  the reduction cell in their place.
- Each cell reads the previous two cell outputs. With ``skip_reduction_layer_input`` (NASNet-A
  Large) the first normal cell after a reduction reads, as its previous input, the cell from two
  steps before the reduction.

Cells are named as in the TF graph (``cell_stem_0``, ``cell_5``, ``reduction_cell_0``, ...).
"""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

from .. import genotypes
from ..errors import ConfigError

STEMS = ("imagenet", "cifar")
# "exclude": TF 'SAME' average pooling (padded zeros not counted); "include": timm's port
AVG_POOL_PAD = ("exclude", "include")
POOL_TYPES = ("avg", "max", "avgmax", "catavgmax", "")  # timm's SelectAdaptivePool2d


def cell_out_channels(genotype: genotypes.Cell, channels: int) -> int:
    """Width of a cell's output: its concatenated states, ``channels`` wide each (twice that for a
    block whose combine is ``concat``; cell inputs are brought to ``channels`` first)."""
    return sum(2 * channels if i >= 2 and genotype.blocks[i - 2].combine == "concat" else channels
               for i in genotype.output_states())


@dataclass(frozen=True)
class NASNetConfig:
    """Everything about a NASNet except its genotype. Field names follow TF's hparams."""

    num_cells: int = 18
    num_conv_filters: int = 168
    stem: str = "imagenet"
    stem_multiplier: float = 3.0
    num_classes: int = 1000
    in_chans: int = 3
    filter_scaling_rate: float = 2.0
    num_reduction_layers: int = 2
    skip_reduction_layer_input: bool = True
    reductions_in_num_cells: bool = False  # True for the PNASNet layout
    drop_path_keep_prob: float = 1.0
    dense_dropout_keep_prob: float = 0.5
    aux_head: bool = False
    img_size: int = 331  # sizes the aux head's last conv, and goes into pretrained_cfg
    avg_pool_pad: str = "exclude"  # "include" reproduces timm's port (see ops.py)
    activation_checkpointing: bool = False
    # timm's global pooling before the classifier: "avg" (as released), "max", "avgmax", "catavgmax",
    # or "" (none: forward_head returns the last map, for num_classes 0)
    global_pool: str = "avg"

    def validate(self) -> "NASNetConfig":
        """Check every field's type and range; a bad one raises :class:`ConfigError` naming it."""
        hints = typing.get_type_hints(NASNetConfig)
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), hints[f.name]
            # bool is an int to Python; a string "6" or a float 4.5 must not slip into a layer width
            ok = (isinstance(value, bool) if kind is bool else
                  isinstance(value, int) and not isinstance(value, bool) if kind is int else
                  isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float else
                  isinstance(value, kind))
            if not ok:
                raise ConfigError(f"NASNet option {f.name} must be {kind.__name__}, got {value!r} "
                                  f"({type(value).__name__})")
        if self.stem not in STEMS:
            raise ConfigError(f"stem must be one of {STEMS}, got {self.stem!r}")
        if self.avg_pool_pad not in AVG_POOL_PAD:
            raise ConfigError(f"avg_pool_pad must be one of {AVG_POOL_PAD}, got {self.avg_pool_pad!r}")
        if self.global_pool not in POOL_TYPES:
            raise ConfigError(f"global_pool must be one of {POOL_TYPES}, got {self.global_pool!r}")
        if not self.global_pool and self.num_classes:
            raise ConfigError(f"global_pool '' (no pooling) leaves a map, not a vector, for the classifier: give "
                              f"num_classes 0 or a pooling of {POOL_TYPES[:-1]}")
        for name, low in (("num_cells", 1), ("num_conv_filters", 1), ("num_classes", 0), ("in_chans", 1),
                          ("num_reduction_layers", 0), ("img_size", 1)):
            if getattr(self, name) < low:
                raise ConfigError(f"NASNet option {name} must be at least {low}, got {getattr(self, name)}")
        for name in ("stem_multiplier", "filter_scaling_rate"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"NASNet option {name} must be positive, got {getattr(self, name)}")
        for name in ("drop_path_keep_prob", "dense_dropout_keep_prob"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ConfigError(f"NASNet option {name} must be in (0, 1], got {getattr(self, name)}")
        where = reduction_indices(self.num_cells, self.num_reduction_layers)
        if len(set(where)) != len(where):
            raise ConfigError(f"num_reduction_layers {self.num_reduction_layers} needs more cells than num_cells "
                              f"{self.num_cells}: two reductions would fall before the same cell (at {where}); use "
                              f"num_cells of at least {self.num_reduction_layers} or fewer reductions")
        narrow = [spec for spec in cell_plan(self) if spec.filters < 1]
        if narrow:
            # the ImageNet stem's cells get 1/4 and 1/2 of num_conv_filters
            least = next(f for f in range(1, 1 << 16) if all(
                s.filters >= 1 for s in cell_plan(dataclasses.replace(self, num_conv_filters=f))))
            raise ConfigError(f"num_conv_filters {self.num_conv_filters} leaves {narrow[0].name} with no filters "
                              f"(the {self.stem} stem scales it by {narrow[0].filters / self.num_conv_filters:g}); "
                              f"use at least {least}")
        return self

    @property
    def min_input_size(self) -> int:
        """The smallest image side the network takes: the ImageNet stem's 3x3 VALID conv needs 3."""
        return 3 if self.stem == "imagenet" else 1


def format_arch(genotype: genotypes.Genotype, num_cells: int, num_conv_filters: int,
                filter_scaling_rate: float = 2.0, num_reduction_layers: int = 2) -> str:
    """The paper's "N @ F" of a network: the inverse of :func:`parse_arch`."""
    per_filter = len(genotype.normal.output_states()) * filter_scaling_rate ** num_reduction_layers
    return f"{num_cells // 3}@{int(num_conv_filters * per_filter)}"


def parse_arch(arch: str, genotype: genotypes.Genotype, filter_scaling_rate: float = 2.0,
               num_reduction_layers: int = 2) -> Tuple[int, int]:
    """The paper's "N @ F" (e.g. "6@4032") -> (num_cells, num_conv_filters).

    N is num_cells / 3; F is the penultimate width: num_conv_filters x the number of states the
    normal cell concatenates x the filter scaling of the last stage (24 x num_conv_filters for
    NASNet-A).
    """
    m = re.fullmatch(r"\s*(\d+)\s*@\s*(\d+)\s*", str(arch))
    if not m:
        raise ConfigError(f"arch must look like 'N@F' (e.g. '6@4032'), got {arch!r}")
    n, width = int(m.group(1)), int(m.group(2))
    per_filter = len(genotype.normal.output_states()) * filter_scaling_rate ** num_reduction_layers
    filters = width / per_filter
    if filters != int(filters) or filters < 1:
        raise ConfigError(f"arch {arch!r}: width {width} is not a multiple of {per_filter:g} "
                         f"({len(genotype.normal.output_states())} concatenated states x "
                         f"{filter_scaling_rate:g}^{num_reduction_layers}) for genotype {genotype.name!r}")
    return 3 * n, int(filters)


def reduction_indices(num_cells: int, num_reduction_layers: int) -> List[int]:
    """nasnet_utils.calc_reduction_layers."""
    return [int(i / (num_reduction_layers + 1) * num_cells) for i in range(1, num_reduction_layers + 1)]


@dataclass(frozen=True)
class CellSpec:
    """One cell's place in the network: its name, kind, width and inputs (no modules)."""

    name: str
    reduction: bool
    filters: int
    prev_offset: int  # previous input = states[-prev_offset]
    index: int = 0  # position among all cells (ScheduledDropPath's depth scaling)
    in_channels: int = 0  # width of the current input
    prev_channels: Optional[int] = None  # width of the previous input (None: there is none)
    prev_is_larger: bool = False  # the previous input has twice the resolution
    out_channels: int = 0
    stride: int = 1  # output stride of the network after this cell


def cell_plan(cfg: NASNetConfig, genotype: Optional[genotypes.Genotype] = None) -> List[CellSpec]:
    """The cells in forward order (TF's _build_nasnet_base / _build_pnasnet_base). With ``genotype``
    each spec also carries its input and output widths, so any slice of the network can be built
    without building the rest."""
    rate, f = cfg.filter_scaling_rate, cfg.num_conv_filters
    plan = []
    if cfg.stem == "imagenet":
        for i in range(2):
            plan.append(CellSpec(f"cell_stem_{i}", True, int(f * rate ** (i - 2)), 2))
    scaling, where = 1.0, reduction_indices(cfg.num_cells, cfg.num_reduction_layers)
    for i in range(cfg.num_cells):
        if i in where:
            scaling *= rate
            if cfg.reductions_in_num_cells:
                plan.append(CellSpec(f"cell_{i}", True, int(f * scaling), 2))
                continue
            plan.append(CellSpec(f"reduction_cell_{where.index(i)}", True, int(f * scaling), 2))
            plan.append(CellSpec(f"cell_{i}", False, int(f * scaling),
                                 3 if cfg.skip_reduction_layer_input else 2))
        else:
            plan.append(CellSpec(f"cell_{i}", False, int(f * scaling), 2))
    if genotype is None:
        return plan
    # walk the (channels, stride) of every state to size each cell
    states = [(stem_width(cfg), 2 if cfg.stem == "imagenet" else 1)]
    sized = []
    for index, spec in enumerate(plan):
        cur_c, cur_s = states[-1]
        prev = states[-spec.prev_offset] if len(states) >= spec.prev_offset else None
        out_c = cell_out_channels(genotype.reduction if spec.reduction else genotype.normal, spec.filters)
        stride = cur_s * (2 if spec.reduction else 1)
        sized.append(dataclasses.replace(spec, index=index, in_channels=cur_c, prev_channels=None if prev is None else prev[0],
                                         prev_is_larger=prev is not None and prev[1] < cur_s, out_channels=out_c,
                                         stride=stride))
        states.append((out_c, stride))
    return sized


def stem_width(cfg: NASNetConfig) -> int:
    return int(32 * cfg.stem_multiplier) if cfg.stem == "imagenet" else int(cfg.num_conv_filters * cfg.stem_multiplier)


def feature_taps(plan: Sequence[CellSpec], cfg: NASNetConfig) -> List[dict]:
    """timm's ``feature_info``: the last state at each stride (the stem's, then cells'). ``module`` is
    the module's path in the network (what timm's hook features read), ``cell`` its cell name."""
    states = [(stem_width(cfg), 2 if cfg.stem == "imagenet" else 1, "stem")]
    states += [(spec.out_channels, spec.stride, spec.name) for spec in plan]
    return [dict(num_chs=c, reduction=s, module=name if name == "stem" else f"cells.{name}", cell=name)
            for i, (c, s, name) in enumerate(states) if i + 1 == len(states) or states[i + 1][1] != s]


def split_point(genotype: genotypes.Genotype, cfg: NASNetConfig) -> str:
    """Where the paper's detection first stage ends: the last cell before the last reduction."""
    return feature_taps(cell_plan(cfg, genotype), cfg)[-2]["cell"]


def spatial_after(size: int, stem: str, num_reductions: int) -> int:
    """The side of the map after the stem and ``num_reductions`` stride-2 cells, from an image of ``size``."""
    if stem == "imagenet":
        size = (size - 3) // 2 + 1  # conv0, VALID
    for _ in range(num_reductions):
        size = -(-size // 2)  # stride-2 'SAME'
    return size


def pretrained_cfg(cfg: NASNetConfig, genotype_name: Optional[str] = None) -> dict:
    """timm's ``pretrained_cfg`` of a network with this layout: the input it expects and where its
    first conv and classifier are (the one definition the network and timm's registry both use)."""
    num_reductions = sum(spec.reduction for spec in cell_plan(cfg))
    pool = spatial_after(cfg.img_size, cfg.stem, num_reductions)
    out = dict(num_classes=cfg.num_classes, input_size=(cfg.in_chans, cfg.img_size, cfg.img_size),
               pool_size=(pool, pool), crop_pct=0.911 if cfg.img_size == 331 else 0.875, interpolation="bicubic",
               mean=(0.5,) * 3, std=(0.5,) * 3, first_conv="stem.conv", classifier="classifier")
    if genotype_name is not None:
        out["genotype"] = genotype_name
    return out


def resolve(genotype: Union[str, genotypes.Genotype, dict] = "nasnet_a", arch: Optional[str] = None,
            **options) -> Tuple[genotypes.Genotype, NASNetConfig]:
    """The genotype and the checked :class:`NASNetConfig` that :func:`build_nasnet` would build."""
    genotype = genotypes.get(genotype)
    known = {f.name for f in dataclasses.fields(NASNetConfig)}
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"unknown NASNet options {sorted(unknown)}; known: {sorted(known)}")
    if arch is not None:
        if "num_cells" in options or "num_conv_filters" in options:
            raise TypeError("give either arch or num_cells/num_conv_filters, not both")
        num_cells, filters = parse_arch(arch, genotype, options.get("filter_scaling_rate", 2.0),
                                        options.get("num_reduction_layers", 2))
        options.update(num_cells=num_cells, num_conv_filters=filters)
    return genotype, NASNetConfig(**options).validate()
