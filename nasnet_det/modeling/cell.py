"""One cell module that interprets any cell of a genotype (nasnet_utils.NasNetABaseCell's logic)."""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..genotypes import Cell as CellGenotype
from .layout import cell_out_channels
from .ops import ConvBN, FactorizedReduction, build_op, combine_norm, drop_path, reads_relu


def concat_adapter(width: int, channels: int, reduction: bool) -> Optional[nn.Module]:
    """What a concatenated cell input of ``width`` needs to match the cell's output: a factorized
    reduction in a reduction cell, else a 1x1 conv where the width differs, else nothing."""
    if reduction:
        return FactorizedReduction(width, channels, relu_input=False)
    if width != channels:
        return ConvBN(width, channels, relu_input=False)
    return None


def op_stride(reduction: bool, state: int) -> int:
    """An op of a reduction cell that reads a cell input (state 0 or 1) has stride 2."""
    return 2 if reduction and state < 2 else 1


def input_convs(in_channels: int, prev_channels: Optional[int], channels: int, prev_is_larger: bool,
                identity_if_same: bool = True) -> Tuple[nn.Module, Optional[nn.Module], int]:
    """The cell's input rules (nasnet_utils' _cell_base): ``(pre0, pre1, width of state 1)``.

    State 0 is a 1x1 conv of the current input. State 1: with no previous input (the first cell)
    the current input itself, unadjusted; a previous input of twice the resolution goes through a
    factorized reduction; one of another width through a 1x1 conv; one already ``channels`` wide is
    used as is (``identity_if_same``; the supernet keeps the conv, its children differ in width).
    """
    pre0 = ConvBN(in_channels, channels, 1)
    if prev_channels is None:
        return pre0, None, in_channels
    if prev_is_larger:
        return pre0, FactorizedReduction(prev_channels, channels), channels
    if prev_channels == channels and identity_if_same:
        return pre0, nn.Identity(), channels
    return pre0, ConvBN(prev_channels, channels, 1), channels


def input_states(pre0: nn.Module, pre1: Optional[nn.Module], x: torch.Tensor, prev: Optional[torch.Tensor],
                 prev_as_is: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
    """States 0 and 1 of a cell from its inputs, by the rules of :func:`input_convs` (``prev_as_is``:
    a previous input already ``channels`` wide, used unchanged)."""
    h0 = pre0(F.relu(x))
    if pre1 is None:
        return [h0, x]
    if prev_as_is is not None:
        return [h0, prev_as_is]
    if isinstance(pre1, nn.Identity):
        return [h0, prev]
    return [h0, pre1(F.relu(prev))]


class BlockStep(NamedTuple):
    """One block as :func:`run_blocks` runs it: two ops on two states, then the combine."""

    op_a: nn.Module
    op_b: nn.Module
    inputs: Tuple[int, int]
    norm: Optional[nn.Module] = None  # the add combine's norm (add_layernorm, ...)
    concat: bool = False  # concat the two outputs instead of adding them
    drops: Tuple[bool, bool] = (False, False)  # whether each op gets drop path


class BlockModule(nn.Module):
    """One block's two ops and its combine (the cell runs them, sharing ReLUs between ops)."""

    def __init__(self, op_a: nn.Module, op_b: nn.Module, combine: str, channels: int):
        super().__init__()
        self.op_a, self.op_b = op_a, op_b
        self.norm = combine_norm(combine, channels)
        self.concat = combine == "concat"


class CellModule(nn.Module):
    """A normal or reduction cell, built from its genotype (:class:`nasnet_det.genotypes.Cell`).

    Args:
        genotype: the cell's blocks and output states.
        channels: the cell's filter count F (width of every op output).
        in_channels: width of the current input (state 0 before its 1x1 conv).
        prev_channels: width of the previous input, or None when there is none (the first cell:
            state 1 is then the current input itself, unadjusted, as in TF).
        reduction: ops that read the cell inputs use stride 2.
        prev_is_larger: the previous input has twice the resolution (it comes from before a
            reduction), so it is brought down with a factorized reduction.
        drop_path_ratio: (index + 1) / total cells, the depth scaling of ScheduledDropPath.
    """

    def __init__(self, genotype: CellGenotype, channels: int, in_channels: int,
                 prev_channels: Optional[int], reduction: bool, prev_is_larger: bool = False,
                 drop_path_ratio: float = 1.0, avg_pool_pad: str = "exclude"):
        super().__init__()
        self.reduction = reduction
        self.drop_path_ratio = drop_path_ratio
        self.pre0, self.pre1, prev_width = input_convs(in_channels, prev_channels, channels, prev_is_larger)

        widths = [channels, prev_width]  # width of each hidden state
        self.blocks = nn.ModuleList()
        self.inputs: List[tuple] = []
        self.drop_ops: List[tuple] = []  # per block: whether op a / op b get drop path (not identity)
        for b in genotype.blocks:
            ops = [build_op(op, widths[i], channels, op_stride(reduction, i), avg_pool_pad)
                   for op, i in zip(b.ops, b.inputs)]
            self.blocks.append(BlockModule(ops[0], ops[1], b.combine, channels))
            self.inputs.append(tuple(b.inputs))
            self.drop_ops.append(tuple(op != "identity" for op in b.ops))
            widths.append(2 * channels if b.combine == "concat" else channels)

        # Output concat: cell inputs that are concatenated must match the output resolution and
        # width (nasnet_utils._combine_unused_states); block outputs already do.
        self.concat = tuple(genotype.output_states())
        self.concat_adapters = nn.ModuleDict()
        for i in self.concat:
            if i < 2 and (adapter := concat_adapter(widths[i], channels, reduction)) is not None:
                self.concat_adapters[str(i)] = adapter
                widths[i] = channels
        self.out_channels = sum(widths[i] for i in self.concat)
        assert self.out_channels == cell_out_channels(genotype, channels)

    def forward(self, x: torch.Tensor, prev: Optional[torch.Tensor],
                drop_prob: Optional[torch.Tensor] = None) -> torch.Tensor:
        keep = None if drop_prob is None else 1.0 - drop_prob * self.drop_path_ratio
        steps = [BlockStep(block.op_a, block.op_b, inputs, block.norm, block.concat, drops)
                 for block, inputs, drops in zip(self.blocks, self.inputs, self.drop_ops)]
        states = run_blocks(input_states(self.pre0, self.pre1, x, prev), steps, keep)
        out = []
        for i in self.concat:
            adapter = self.concat_adapters[str(i)] if str(i) in self.concat_adapters else None
            out.append(states[i] if adapter is None else adapter(states[i]))
        return torch.cat(out, 1)


def run_blocks(states: List[torch.Tensor], steps: List[BlockStep], keep: Optional[torch.Tensor] = None
               ) -> List[torch.Tensor]:
    """A cell's blocks (:class:`BlockStep`), in order, on its two input states; returns every state.

    The cell and the one-shot supernet (:mod:`nasnet_det.search.supernet`) both run their blocks
    here, so a path of the supernet computes what the cell of that genotype computes.
    """
    states = list(states)
    relu_states: List[Optional[torch.Tensor]] = [None] * len(states)
    for op_a, op_b, inputs, norm, concat, drops in steps:
        outs = []
        for op, i, drop in zip((op_a, op_b), inputs, drops):
            if reads_relu(op):
                if relu_states[i] is None:
                    relu_states[i] = F.relu(states[i])
                y = op(relu_states[i])
            else:
                y = op(states[i])
            if keep is not None and drop:
                y = drop_path(y, keep)
            outs.append(y)
        if concat:
            h = torch.cat(outs, 1)
        else:
            h = outs[0] + outs[1]
            if norm is not None:
                h = norm(h)
        states.append(h)
        relu_states.append(None)
    return states
