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

from .. import genotypes as G
from ..errors import ConfigError, InputError
from .cell import Cell
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


def parse_arch(arch: str, genotype: G.Genotype, stem: str = "imagenet",
               filter_scaling_rate: float = 2.0, num_reduction_layers: int = 2) -> Tuple[int, int]:
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
    name: str
    reduction: bool
    filters: int
    prev_offset: int  # previous input = states[-prev_offset]


def cell_plan(cfg: NASNetConfig) -> List[CellSpec]:
    """The cells in forward order (TF's _build_nasnet_base / _build_pnasnet_base)."""
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
    return plan


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
    """Runs named cells in order; holds the drop-path schedule and checkpointing switch.

    Subclasses set ``cells`` (ModuleDict), ``plan`` ({name: CellSpec}) and ``drop_path_keep_prob``.
    """

    def _init_runner(self, drop_path_keep_prob: float, grad_checkpointing: bool):
        self.drop_path_keep_prob = drop_path_keep_prob
        self.grad_checkpointing = grad_checkpointing
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
    """Consecutive cells taken out of a NASNet: the paper's detection second stage.

    ``forward`` takes the feature map of the (previous, current) state pair concatenated along
    channels, as the first stage hands it over, and returns ReLU(last cell output).
    """

    def __init__(self, net: "NASNet", names: Sequence[str], pair_channels: Tuple[int, int]):
        super().__init__()
        self.names = tuple(names)
        self.cells = nn.ModuleDict({n: net.cells[n] for n in self.names})
        self.plan = {n: net.plan[n] for n in self.names}
        self.pair_channels = tuple(pair_channels)
        self.out_channels = self.cells[self.names[-1]].out_channels
        self._init_runner(net.drop_path_keep_prob, net.grad_checkpointing)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        prev, cur = torch.split(pair, list(self.pair_channels), dim=1)
        return F.relu(self.run_cells([prev, cur], self.names)[-1])


class NASNet(CellRunner):
    """A NASNet of any genotype of the NASNet search space.

    ``forward`` returns logits; in training with ``aux_head`` it returns ``(logits, aux_logits)``.
    ``feature_info`` lists the taps of :meth:`forward_intermediates` (timm's convention: ReLU'd
    output of the last cell at each stride).
    """

    def __init__(self, genotype: Union[str, G.Genotype], cfg: NASNetConfig = NASNetConfig()):
        super().__init__()
        self.genotype = G.get(genotype)
        self.cfg = cfg.validate()
        plan = cell_plan(cfg)
        self.plan: Dict[str, CellSpec] = {spec.name: spec for spec in plan}
        self.cell_names: Tuple[str, ...] = tuple(self.plan)

        if cfg.stem == "imagenet":
            stem_channels, stem_stride = int(32 * cfg.stem_multiplier), 2
            self.stem = nn.Sequential()
            self.stem.add_module("conv", nn.Conv2d(cfg.in_chans, stem_channels, 3, 2, 0, bias=False))
        else:
            stem_channels, stem_stride = int(cfg.num_conv_filters * cfg.stem_multiplier), 1
            self.stem = nn.Sequential()
            self.stem.add_module("conv", nn.Conv2d(cfg.in_chans, stem_channels, 3, 1, 1, bias=False))
        self.stem.add_module("bn", batch_norm(stem_channels))

        # Walk the plan with the (channels, stride) of every state to size each cell.
        self.cells = nn.ModuleDict()
        states = [(stem_channels, stem_stride, "stem")]
        self.feature_info: List[dict] = []
        for index, spec in enumerate(plan):
            cur_c, cur_s, _ = states[-1]
            prev = states[-spec.prev_offset] if len(states) >= spec.prev_offset else None
            cell = Cell(
                self.genotype.reduction if spec.reduction else self.genotype.normal,
                spec.filters, cur_c, None if prev is None else prev[0], spec.reduction,
                prev_is_larger=prev is not None and prev[1] < cur_s,
                drop_path_ratio=(index + 1) / len(plan), avg_pool_pad=cfg.avg_pool_pad)
            self.cells[spec.name] = cell
            states.append((cell.out_channels, cur_s * (2 if spec.reduction else 1), spec.name))
        # taps: the last state at each stride
        for i, (c, s, name) in enumerate(states):
            if i + 1 == len(states) or states[i + 1][1] != s:
                self.feature_info.append(dict(num_chs=c, reduction=s, module=name))
        self.num_features = self.head_hidden_size = states[-1][0]

        self.aux_cell: Optional[str] = None
        self.aux_head: Optional[AuxHead] = None
        where = reduction_indices(cfg.num_cells, cfg.num_reduction_layers)
        if cfg.aux_head and cfg.num_classes and len(where) >= 2:
            self.aux_cell = f"cell_{where[1] - 1}"
            n_red = sum(1 for n in self.cell_names[: self.cell_names.index(self.aux_cell) + 1]
                        if self.plan[n].reduction)
            aux_c = self.cells[self.aux_cell].out_channels
            self.aux_head = AuxHead(aux_c, cfg.num_classes,
                                    _spatial_after(cfg.img_size, cfg.stem, n_red))

        self.head_drop = nn.Dropout(1.0 - cfg.dense_dropout_keep_prob)
        self.classifier = nn.Linear(self.num_features, cfg.num_classes) if cfg.num_classes else nn.Identity()
        self._init_runner(cfg.drop_path_keep_prob, cfg.activation_checkpointing)
        self.pretrained_cfg = dict(
            input_size=(cfg.in_chans, cfg.img_size, cfg.img_size), interpolation="bicubic",
            mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=0.911 if cfg.img_size == 331 else 0.875,
            num_classes=cfg.num_classes, first_conv="stem.conv", classifier="classifier",
            genotype=self.genotype.name)
        self._init_weights()

    def _init_weights(self):
        # TF: variance scaling, fan-out (slim's default for these nets); BN gamma 1, beta 0.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------------------------
    # Training controls

    def split(self, after: str) -> CellStack:
        """Cut the network after cell ``after``: this model keeps the cells up to it (and no head),
        the returned :class:`CellStack` holds the rest and reads the (previous, current) pair."""
        index = self.cell_names.index(after)
        head, tail = self.cell_names[: index + 1], self.cell_names[index + 1:]
        if not tail:
            raise ValueError(f"nothing to split off after the last cell {after!r}")
        widths = [self.cells[n].out_channels for n in head[-2:]]
        stack = CellStack(self, tail, (widths[0], widths[1]))
        for n in tail:
            del self.cells[n]
            del self.plan[n]
        self.cell_names = head
        self.feature_info = [f for f in self.feature_info if f["module"] in ("stem",) + head]
        self.classifier, self.aux_head, self.aux_cell = nn.Identity(), None, None
        self.num_features = self.head_hidden_size = widths[1]
        return stack

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
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

    def forward_intermediates(self, x: torch.Tensor, indices: Optional[Sequence[int]] = None
                              ) -> List[torch.Tensor]:
        """Taps of ``feature_info`` (all, or those at ``indices``), stopping after the last one.

        Cell taps are ReLU'd (the next cell starts with that ReLU), the stem tap is not: as timm.
        """
        names = [self.feature_info[i]["module"] for i in (range(len(self.feature_info))
                                                          if indices is None else indices)]
        taps: Dict[str, Optional[torch.Tensor]] = dict.fromkeys(names)
        states = self.forward_stem(x)
        taps["stem"] = states[0]
        cells = [self.cell_names.index(n) for n in names if n != "stem"]
        if cells:
            self.run_cells(states, self.cell_names[: max(cells) + 1], taps)
        return [taps[n] if n == "stem" else F.relu(taps[n]) for n in names]

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

def build_nasnet(genotype: Union[str, G.Genotype] = "nasnet_a", arch: Optional[str] = None,
                 **options) -> NASNet:
    """The generic builder that detection, search and pretraining all use.

    Args:
        genotype: a published name, a .json path or a :class:`~nasnet_det.genotypes.Genotype`.
        arch: the paper's "N@F" (e.g. "4@1056"); or give ``num_cells`` and ``num_conv_filters``.
        options: any :class:`NASNetConfig` field.
    """
    genotype = G.get(genotype)
    known = {f.name for f in dataclasses.fields(NASNetConfig)}
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"unknown NASNet options {sorted(unknown)}; known: {sorted(known)}")
    if arch is not None:
        if "num_cells" in options or "num_conv_filters" in options:
            raise TypeError("give either arch or num_cells/num_conv_filters, not both")
        num_cells, filters = parse_arch(arch, genotype, options.get("stem", "imagenet"),
                                        options.get("filter_scaling_rate", 2.0),
                                        options.get("num_reduction_layers", 2))
        options.update(num_cells=num_cells, num_conv_filters=filters)
    return NASNet(genotype, NASNetConfig(**options))


# The published configurations (TF nasnet.py / pnasnet.py hparams).
CONFIGS = {
    "nasnet_a_large": dict(genotype="nasnet_a", num_cells=18, num_conv_filters=168, stem_multiplier=3.0,
                           drop_path_keep_prob=0.7, dense_dropout_keep_prob=0.5,
                           skip_reduction_layer_input=True, img_size=331),
    "nasnet_a_mobile": dict(genotype="nasnet_a", num_cells=12, num_conv_filters=44, stem_multiplier=1.0,
                            drop_path_keep_prob=1.0, dense_dropout_keep_prob=0.5,
                            skip_reduction_layer_input=False, img_size=224),
    "nasnet_a_cifar": dict(genotype="nasnet_a", num_cells=18, num_conv_filters=32, stem_multiplier=3.0,
                           stem="cifar", drop_path_keep_prob=0.6, dense_dropout_keep_prob=1.0,
                           skip_reduction_layer_input=False, img_size=32, num_classes=10),
    "pnasnet_5_large": dict(genotype="pnasnet_5", num_cells=12, num_conv_filters=216, stem_multiplier=3.0,
                            drop_path_keep_prob=0.6, dense_dropout_keep_prob=0.5,
                            skip_reduction_layer_input=True, reductions_in_num_cells=True, img_size=331),
}


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
