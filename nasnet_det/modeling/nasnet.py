"""NASNet networks from genotypes: stems, cell stacking, heads, drop path, feature taps.

Assembly follows tensorflow/models research/slim/nets/nasnet (nasnet.py, pnasnet.py):

- ImageNet stem: conv0 (3x3, stride 2, VALID) + BN, then two reduction cells ``cell_stem_0/1``
  with filter scaling 1/4 and 1/2. CIFAR stem: one 3x3 conv + BN.
- ``num_cells`` counts the normal cells; reduction cells go before normal cells ``int(n/3)`` and
  ``int(2n/3)`` (NASNet layout). The PNASNet layout counts reduction cells in ``num_cells`` and runs
  the reduction cell in their place.
- Each cell reads the previous two cell outputs. With ``skip_reduction_layer_input`` (NASNet-A
  Large) the first normal cell after a reduction reads, as its previous input, the cell from two
  steps before the reduction.
- Head: ReLU -> global average pool -> dropout -> FC; optional auxiliary head on the normal cell
  just before the second reduction.

Cells are named as in the TF graph (``cell_stem_0``, ``cell_5``, ``reduction_cell_0``, ...).
"""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .. import genotypes
from ..errors import ConfigError, InputError
from .cell import CellModule, cell_out_channels
from .ops import AVG_POOL_PAD, batch_norm

STEMS = ("imagenet", "cifar")


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


def build_stem(cfg: NASNetConfig) -> nn.Sequential:
    """The stem conv + BN: ImageNet's 3x3 stride-2 VALID conv, or CIFAR's 3x3 stride-1 one."""
    stem_c = stem_width(cfg)
    stride, padding = (2, 0) if cfg.stem == "imagenet" else (1, 1)
    stem = nn.Sequential()
    stem.add_module("conv", nn.Conv2d(cfg.in_chans, stem_c, 3, stride, padding, bias=False))
    stem.add_module("bn", batch_norm(stem_c))
    return stem


def decay_param_groups(module: nn.Module, weight_decay: float) -> List[dict]:
    """Optimizer groups as TF regularises: L2 on conv and FC weights, not on BN or biases."""
    decay = [p for p in module.parameters() if p.ndim > 1]
    rest = [p for p in module.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def feature_taps(plan: Sequence[CellSpec], cfg: NASNetConfig) -> List[dict]:
    """timm's ``feature_info``: the last state at each stride (the stem's, then cells')."""
    states = [(stem_width(cfg), 2 if cfg.stem == "imagenet" else 1, "stem")]
    states += [(spec.out_channels, spec.stride, spec.name) for spec in plan]
    return [dict(num_chs=c, reduction=s, module=name) for i, (c, s, name) in enumerate(states)
            if i + 1 == len(states) or states[i + 1][1] != s]


def split_point(genotype: genotypes.Genotype, cfg: NASNetConfig) -> str:
    """Where the paper's detection first stage ends: the last cell before the last reduction."""
    return feature_taps(cell_plan(cfg, genotype), cfg)[-2]["module"]


def build_cell(spec: CellSpec, genotype: genotypes.Genotype, cfg: NASNetConfig, num_cells: int) -> CellModule:
    return CellModule(genotype.reduction if spec.reduction else genotype.normal, spec.filters, spec.in_channels,
                      spec.prev_channels, spec.reduction, prev_is_larger=spec.prev_is_larger,
                      drop_path_ratio=(spec.index + 1) / num_cells, avg_pool_pad=cfg.avg_pool_pad)


def init_weights(module: nn.Module) -> None:
    """TF: variance scaling, fan-out (slim's default for these nets); BN gamma 1, beta 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)


class AuxHead(nn.Module):
    """TF _build_aux_head: 5x5/3 avg pool -> 1x1 conv 128 -> BN -> ReLU -> conv 768 -> BN -> ReLU -> FC."""

    def __init__(self, in_channels: int, num_classes: int, spatial: int):
        super().__init__()
        # the second conv covers whatever is left after the pool (TF sizes it from the graph)
        self.kernel = max((spatial - 5) // 3 + 1, 1)
        self.proj = nn.Conv2d(in_channels, 128, 1, bias=False)
        self.bn0 = batch_norm(128)
        self.conv = nn.Conv2d(128, 768, self.kernel, bias=False)
        self.bn1 = batch_norm(768)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        if min(x.shape[-2:]) >= 5:
            x = F.avg_pool2d(x, 5, 3)
        x = F.relu(self.bn0(self.proj(x)))
        if x.shape[-1] != self.kernel or x.shape[-2] != self.kernel:
            x = F.adaptive_avg_pool2d(x, self.kernel)  # inputs of another size than img_size
        x = F.relu(self.bn1(self.conv(x)))
        return self.fc(torch.flatten(x, 1))


def _spatial_after(size: int, stem: str, num_reductions: int) -> int:
    if stem == "imagenet":
        size = (size - 3) // 2 + 1  # conv0, VALID
    for _ in range(num_reductions):
        size = -(-size // 2)  # stride-2 'SAME'
    return size


class CellRunner(nn.Module):
    """Cells of one network, run in order; holds the drop-path schedule and checkpointing switch.

    Builds the cells ``names`` of the network that ``genotype`` and ``cfg`` describe, and only
    those: a slice of a NASNet costs only its own parameters.
    """

    def __init__(self, genotype: genotypes.Genotype, cfg: NASNetConfig, names: Optional[Sequence[str]] = None,
                 cells: Optional[Dict[str, nn.Module]] = None):
        super().__init__()
        self.genotype, self.cfg = genotype, cfg
        full = cell_plan(cfg, genotype)
        wanted = [spec for spec in full if names is None or spec.name in names]
        self.plan: Dict[str, CellSpec] = {spec.name: spec for spec in wanted}
        self.cell_names: Tuple[str, ...] = tuple(self.plan)
        # ``cells``: modules of another runner of the same network, adopted instead of built
        self.cells = nn.ModuleDict({spec.name: cells[spec.name] if cells is not None else
                                    build_cell(spec, genotype, cfg, len(full)) for spec in wanted})
        self.drop_path_keep_prob = cfg.drop_path_keep_prob
        self.grad_checkpointing = cfg.activation_checkpointing
        # ScheduledDropPath's training progress t in [0, 1] (a buffer, so changing it does not make
        # torch.compile recompile). 1.0 until a training loop sets it: the configured keep
        # probability then applies as given.
        self.register_buffer("drop_path_progress", torch.ones(()), persistent=False)

    def set_drop_path_progress(self, progress: float) -> None:
        """ScheduledDropPath: call with step / total_steps (clipped to [0, 1]) during training."""
        self.drop_path_progress.fill_(min(max(float(progress), 0.0), 1.0))

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each cell in the backward pass instead of storing its activations."""
        self.grad_checkpointing = enable

    def _drop_prob(self) -> Optional[torch.Tensor]:
        if not self.training or self.drop_path_keep_prob >= 1.0:
            return None
        return self.drop_path_progress * (1.0 - self.drop_path_keep_prob)

    def run_cells(self, states: List[torch.Tensor], names: Sequence[str],
                  taps: Optional[Dict[str, torch.Tensor]] = None) -> List[torch.Tensor]:
        """Run cells ``names`` in order on the state list (last entry = current input).

        Returns the last three states (what any later cell may read). Cells whose names are in
        ``taps`` have their output stored there.
        """
        drop_prob = self._drop_prob()
        checkpointing = self.grad_checkpointing and self.training and torch.is_grad_enabled()
        states = list(states)
        for name in names:
            spec = self.plan[name]
            cur = states[-1]
            prev = states[-spec.prev_offset] if len(states) >= spec.prev_offset else None
            cell = self.cells[name]
            if checkpointing:
                out = checkpoint(cell, cur, prev, drop_prob, use_reentrant=False)
            else:
                out = cell(cur, prev, drop_prob)
            if taps is not None and name in taps:
                taps[name] = out
            states = states[-2:] + [out]
        return states


class CellStack(CellRunner):
    """The cells after ``after``: the paper's detection second stage.

    ``forward`` takes the feature map of the (previous, current) state pair concatenated along
    channels, as the first stage hands it over, and returns ReLU(last cell output).
    """

    def __init__(self, genotype: genotypes.Genotype, cfg: NASNetConfig, after: str,
                 cells: Optional[Dict[str, nn.Module]] = None):
        plan = cell_plan(cfg, genotype)
        full = [spec.name for spec in plan]
        if after not in full or after == full[-1]:
            raise ConfigError(f"cannot split the network after {after!r}: its cells are {', '.join(full)}")
        cut = full.index(after) + 1
        super().__init__(genotype, cfg, full[cut:], cells)
        widths = [stem_width(cfg)] + [spec.out_channels for spec in plan[:cut]]
        self.pair_channels = (widths[-2], widths[-1])
        self.out_channels = self.plan[self.cell_names[-1]].out_channels
        if cells is None:
            init_weights(self)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        prev, cur = torch.split(pair, list(self.pair_channels), dim=1)
        return F.relu(self.run_cells([prev, cur], self.cell_names)[-1])


class NASNet(CellRunner):
    """A NASNet of any genotype of the NASNet search space.

    ``forward`` returns logits; in training with ``aux_head`` it returns ``(logits, aux_logits)``.
    ``feature_info`` lists the taps of :meth:`forward_intermediates` (timm's convention: ReLU'd
    output of the last cell at each stride). With ``last_cell`` the network ends there, without a
    head: the first stage of the paper's detection layout (:class:`CellStack` holds the rest).
    """

    def __init__(self, genotype: Union[str, genotypes.Genotype, dict], cfg: NASNetConfig = NASNetConfig(),
                 last_cell: Optional[str] = None):
        genotype = genotypes.get(genotype)
        cfg = cfg.validate()
        full = [spec.name for spec in cell_plan(cfg)]
        if last_cell is not None and last_cell not in full:
            raise ConfigError(f"last_cell {last_cell!r} is not a cell of this network: {', '.join(full)}")
        super().__init__(genotype, cfg, full if last_cell is None else full[: full.index(last_cell) + 1])

        self.stem = build_stem(cfg)
        self.feature_info: List[dict] = feature_taps(list(self.plan.values()), cfg)
        self.num_features = self.head_hidden_size = self.feature_info[-1]["num_chs"]

        self.aux_cell: Optional[str] = None
        self.aux_head: Optional[AuxHead] = None
        num_classes = cfg.num_classes if last_cell is None else 0
        where = reduction_indices(cfg.num_cells, cfg.num_reduction_layers)
        if cfg.aux_head and num_classes and len(where) >= 2:
            self.aux_cell = f"cell_{where[1] - 1}"
            n_red = sum(1 for n in self.cell_names[: self.cell_names.index(self.aux_cell) + 1]
                        if self.plan[n].reduction)
            self.aux_head = AuxHead(self.plan[self.aux_cell].out_channels, num_classes,
                                    _spatial_after(cfg.img_size, cfg.stem, n_red))

        self.head_drop = nn.Dropout(1.0 - cfg.dense_dropout_keep_prob)
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        self.pretrained_cfg = dict(
            input_size=(cfg.in_chans, cfg.img_size, cfg.img_size), interpolation="bicubic",
            mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=0.911 if cfg.img_size == 331 else 0.875,
            num_classes=num_classes, first_conv="stem.conv", classifier="classifier",
            genotype=self.genotype.name)
        init_weights(self)

    def param_groups(self, weight_decay: float) -> List[dict]:
        return decay_param_groups(self, weight_decay)

    # ------------------------------------------------------------------------------------
    # Training controls

    def split(self, after: str) -> CellStack:
        """Cut the network after cell ``after``: this model keeps the cells up to it (and no head),
        the returned :class:`CellStack` holds the rest and reads the (previous, current) pair."""
        stack = CellStack(self.genotype, self.cfg, after, cells=dict(self.cells.items()))
        head = self.cell_names[: self.cell_names.index(after) + 1]
        for n in stack.cell_names:
            del self.cells[n]
            del self.plan[n]
        self.cell_names = head
        self.feature_info = [f for f in self.feature_info if f["module"] in ("stem",) + head]
        self.classifier, self.aux_head, self.aux_cell, self.num_classes = nn.Identity(), None, None, 0
        self.num_features = self.head_hidden_size = self.plan[head[-1]].out_channels
        return stack

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """timm's contract; ``global_pool`` is accepted and unused (always average pooling)."""
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    # ------------------------------------------------------------------------------------
    # Forward

    def forward_stem(self, x: torch.Tensor) -> List[torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != self.cfg.in_chans:
            raise InputError(f"{type(self).__name__} expects images of shape (N, {self.cfg.in_chans}, H, W), "
                             f"got {tuple(x.shape)}: convert grayscale or RGBA images to "
                             f"{self.cfg.in_chans} channels, or build the network with in_chans={x.shape[1] if x.dim() == 4 else '?'}")
        if min(x.shape[-2:]) < self.cfg.min_input_size:
            raise InputError(f"image of {x.shape[-2]}x{x.shape[-1]} px is too small: the {self.cfg.stem} stem needs "
                             f"at least {self.cfg.min_input_size}x{self.cfg.min_input_size}")
        return [self.stem(x)]

    def forward_taps(self, x: torch.Tensor, names: Sequence[str], until: Optional[str] = None
                     ) -> Tuple[Dict[str, torch.Tensor], List[torch.Tensor]]:
        """Run the stem and the cells up to the last of ``names`` (or to ``until``, if later).

        Returns the outputs of ``names`` ("stem" or cell names) and the last states. Cell outputs
        are ReLU'd (the next cell starts with that ReLU), the stem's is not: as timm's taps.
        """
        taps: Dict[str, Optional[torch.Tensor]] = dict.fromkeys(names)
        states = self.forward_stem(x)
        if "stem" in taps:
            taps["stem"] = states[0]
        last = [self.cell_names.index(n) for n in list(names) + ([until] if until else []) if n != "stem"]
        if last:
            states = self.run_cells(states, self.cell_names[: max(last) + 1], taps)
        return {n: t if n == "stem" else F.relu(t) for n, t in taps.items()}, states

    def forward_intermediates(self, x: torch.Tensor, indices: Optional[Union[int, Sequence[int]]] = None,
                              norm: bool = False, stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False):
        """timm's contract: the taps of ``feature_info`` at ``indices`` (the last n if an int, all if
        None) and, unless ``intermediates_only``, the final features first: ``(final, taps)``.

        ``norm`` is accepted and unused (no final norm); ``stop_early`` stops after the last tap.
        """
        from timm.models._features import feature_take_indices

        if output_fmt != "NCHW":
            raise ConfigError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        take, _ = feature_take_indices(len(self.feature_info), indices)
        names = [self.feature_info[i]["module"] for i in take]
        until = None if (intermediates_only or stop_early) else self.cell_names[-1]
        taps, states = self.forward_taps(x, names, until=until)
        intermediates = [taps[n] for n in names]
        if intermediates_only:
            return intermediates
        return F.relu(states[-1]), intermediates

    def prune_intermediate_layers(self, indices: Union[int, Sequence[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """timm's contract: drop the cells after the last tap ``indices`` needs; returns the indices."""
        from timm.models._features import feature_take_indices

        take, max_index = feature_take_indices(len(self.feature_info), indices)
        last = self.feature_info[max_index]["module"]
        keep = () if last == "stem" else self.cell_names[: self.cell_names.index(last) + 1]
        for name in self.cell_names[len(keep):]:
            del self.cells[name]
            del self.plan[name]
        pruned = len(keep) < len(self.cell_names)
        self.cell_names = tuple(keep)
        self.feature_info = self.feature_info[: max_index + 1]
        if pruned:
            self.num_features = self.head_hidden_size = self.feature_info[-1]["num_chs"]
            self.aux_head, self.aux_cell = None, None
        if prune_head or pruned:
            self.reset_classifier(0)
        return take

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self._forward_cells(x)[0])

    def _forward_cells(self, x: torch.Tensor):
        taps = {self.aux_cell: None} if (self.aux_head is not None and self.training) else None
        states = self.run_cells(self.forward_stem(x), self.cell_names, taps)
        return states[-1], (taps or {}).get(self.aux_cell)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor):
        final, aux_in = self._forward_cells(x)
        logits = self.forward_head(F.relu(final))
        if aux_in is not None:
            return logits, self.aux_head(aux_in)
        return logits


# ------------------------------------------------------------------------------------------------
# Builders

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


def build_nasnet(genotype: Union[str, genotypes.Genotype, dict] = "nasnet_a", arch: Optional[str] = None,
                 last_cell: Optional[str] = None, **options) -> NASNet:
    """The generic builder that detection, search and pretraining all use.

    Args:
        genotype: a published name, a .json path, a dict or a :class:`~nasnet_det.genotypes.Genotype`.
        arch: the paper's "N@F" (e.g. "4@1056"); or give ``num_cells`` and ``num_conv_filters``.
        last_cell: end the network after this cell, without a head (see :func:`split_point`).
        options: any :class:`NASNetConfig` field.
    """
    genotype, cfg = resolve(genotype, arch, **options)
    return NASNet(genotype, cfg, last_cell=last_cell)


def build_cell_stack(genotype: Union[str, genotypes.Genotype, dict] = "nasnet_a", arch: Optional[str] = None,
                     after: Optional[str] = None, **options) -> CellStack:
    """The cells after ``after`` (default: :func:`split_point`) of the network :func:`build_nasnet`
    builds with the same arguments, and nothing else of it."""
    genotype, cfg = resolve(genotype, arch, **options)
    return CellStack(genotype, cfg, after or split_point(genotype, cfg))


@dataclass(frozen=True)
class Published:
    """A released configuration and what the released model measures (ports on CPU)."""

    genotype: str
    options: dict  # NASNetConfig fields (TF nasnet.py / pnasnet.py hparams)
    params: float  # parameters of the released model with its classifier
    mult_adds: Optional[float]  # conv + final linear, at options["img_size"]
    reference: str

    def arch(self) -> str:
        return format_arch(genotypes.get(self.genotype), self.options["num_cells"], self.options["num_conv_filters"])


# The one table of published sizes: the builders, the model table, the weight converter and the
# config tests read it.
PUBLISHED: Dict[str, Published] = {
    "nasnet_a_large": Published("nasnet_a", dict(num_cells=18, num_conv_filters=168, stem_multiplier=3.0,
                                                 drop_path_keep_prob=0.7, dense_dropout_keep_prob=0.5,
                                                 skip_reduction_layer_input=True, img_size=331),
                                88.753e6, 23.783e9, "timm nasnetalarge (TF weights)"),
    "nasnet_a_mobile": Published("nasnet_a", dict(num_cells=12, num_conv_filters=44, stem_multiplier=1.0,
                                                  drop_path_keep_prob=1.0, dense_dropout_keep_prob=0.5,
                                                  skip_reduction_layer_input=False, img_size=224),
                                 5.290e6, 563.6e6, "Cadene nasnetamobile (TF weights)"),
    "nasnet_a_cifar": Published("nasnet_a", dict(num_cells=18, num_conv_filters=32, stem_multiplier=3.0, stem="cifar",
                                                 drop_path_keep_prob=0.6, dense_dropout_keep_prob=1.0,
                                                 skip_reduction_layer_input=False, img_size=32, num_classes=10),
                                3.33e6, None, "paper, table 1"),
    "pnasnet_5_large": Published("pnasnet_5", dict(num_cells=12, num_conv_filters=216, stem_multiplier=3.0,
                                                   drop_path_keep_prob=0.6, dense_dropout_keep_prob=0.5,
                                                   skip_reduction_layer_input=True, reductions_in_num_cells=True,
                                                   img_size=331),
                                 86.06e6, 24.94e9, "timm pnasnet5large (TF weights)"),
}
CONFIGS = {name: dict(genotype=p.genotype, **p.options) for name, p in PUBLISHED.items()}


def penultimate_width(name: str) -> int:
    """The classifier's input width of a published network (how the converter recognises one)."""
    p = PUBLISHED[name]
    genotype, cfg = resolve(p.genotype, **p.options)
    return cell_plan(cfg, genotype)[-1].out_channels


def _builder(name: str):
    def build(num_classes: Optional[int] = None, aux_head: bool = False, **overrides) -> NASNet:
        options = dict(CONFIGS[name])
        genotype = options.pop("genotype")
        if num_classes is not None:
            options["num_classes"] = num_classes
        options.update(aux_head=aux_head, **overrides)
        return build_nasnet(genotype, **options)

    build.__name__ = name
    build.__doc__ = f"{name}: {CONFIGS[name]} (aux head off by default, as the paper counts parameters)."
    return build


nasnet_a_large = _builder("nasnet_a_large")
nasnet_a_mobile = _builder("nasnet_a_mobile")
nasnet_a_cifar = _builder("nasnet_a_cifar")
pnasnet_5_large = _builder("pnasnet_5_large")
