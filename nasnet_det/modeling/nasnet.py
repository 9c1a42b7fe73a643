"""NASNet networks from genotypes: the stem, the cells stacked as :mod:`.layout` plans them, the
heads, drop path and feature taps. Head: ReLU -> global average pool -> dropout -> FC; an optional
auxiliary head on the normal cell just before the second reduction.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import create_classifier
from torch.utils.checkpoint import checkpoint

from .. import genotypes
from ..errors import ConfigError, InputError
from .cell import CellModule
from .layout import (CellSpec, NASNetConfig, cell_plan, feature_taps, pretrained_cfg, reduction_indices, resolve,
                     spatial_after, split_point, stem_width)
from .ops import batch_norm

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


def check_image(x: torch.Tensor, in_chans: int, min_size: int, stem: str) -> torch.Tensor:
    """``x`` if it is a batch of images the network takes, else one :class:`InputError` naming the fix.
    A leaf of torch.fx traces (below): a traced network checks each input as the eager one does."""
    if x.dim() != 4 or x.shape[1] != in_chans:
        raise InputError(f"NASNet expects images of shape (N, {in_chans}, H, W), got {tuple(x.shape)}: convert "
                         f"grayscale or RGBA images to {in_chans} channels, or build the network with "
                         f"in_chans={x.shape[1] if x.dim() == 4 else '?'}")
    if min(x.shape[-2:]) < min_size:
        raise InputError(f"image of {x.shape[-2]}x{x.shape[-1]} px is too small: the {stem} stem needs "
                         f"at least {min_size}x{min_size}")
    return x


torch.fx.wrap("check_image")


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
                                    spatial_after(cfg.img_size, cfg.stem, n_red))

        self.head_drop = nn.Dropout(1.0 - cfg.dense_dropout_keep_prob)
        self.num_classes = num_classes
        self.global_pool, self.classifier = create_classifier(self.num_features, num_classes, pool_type=cfg.global_pool)
        self.pretrained_cfg = {**pretrained_cfg(cfg, self.genotype.name), "num_classes": num_classes}
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
        self.feature_info = [f for f in self.feature_info if f["cell"] in ("stem",) + head]
        self.classifier, self.aux_head, self.aux_cell, self.num_classes = nn.Identity(), None, None, 0
        self.num_features = self.head_hidden_size = self.plan[head[-1]].out_channels
        return stack

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """timm's contract: a new classifier for ``num_classes`` (0: none) after ``global_pool``
        (None: keep the current pooling; "": none, forward_head returns the map)."""
        pool = self.global_pool.pool_type if global_pool is None else global_pool
        dataclasses.replace(self.cfg, num_classes=num_classes, global_pool=pool).validate()  # one line if bad
        self.num_classes = num_classes
        self.global_pool, self.classifier = create_classifier(self.num_features, num_classes, pool_type=pool)

    # ------------------------------------------------------------------------------------
    # Forward

    def forward_stem(self, x: torch.Tensor) -> List[torch.Tensor]:
        return [self.stem(check_image(x, self.cfg.in_chans, self.cfg.min_input_size, self.cfg.stem))]

    def forward_taps(self, x: torch.Tensor, names: Sequence[str], last_cell: Optional[str] = None
                     ) -> Tuple[Dict[str, torch.Tensor], List[torch.Tensor]]:
        """Run the stem and the cells up to the last of ``names`` (or to ``last_cell``, if later).

        Returns the outputs of ``names`` ("stem" or cell names) and the last states. Cell outputs
        are ReLU'd (the next cell starts with that ReLU), the stem's is not: as timm's taps.
        """
        taps: Dict[str, Optional[torch.Tensor]] = dict.fromkeys(names)
        states = self.forward_stem(x)
        if "stem" in taps:
            taps["stem"] = states[0]
        last = [self.cell_names.index(n) for n in list(names) + ([last_cell] if last_cell else []) if n != "stem"]
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
        names = [self.feature_info[i]["cell"] for i in take]
        last_cell = None if (intermediates_only or stop_early) else self.cell_names[-1]
        taps, states = self.forward_taps(x, names, last_cell=last_cell)
        intermediates = [taps[n] for n in names]
        if intermediates_only:
            return intermediates
        return F.relu(states[-1]), intermediates

    def prune_intermediate_layers(self, indices: Union[int, Sequence[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """timm's contract: drop the cells after the last tap ``indices`` needs; returns the indices."""
        from timm.models._features import feature_take_indices

        take, max_index = feature_take_indices(len(self.feature_info), indices)
        last = self.feature_info[max_index]["cell"]
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
        x = self.head_drop(self.global_pool(x))
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor):
        final, aux_in = self._forward_cells(x)
        logits = self.forward_head(F.relu(final))
        if aux_in is not None:
            return logits, self.aux_head(aux_in)
        return logits


# ------------------------------------------------------------------------------------------------
# Builders

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


