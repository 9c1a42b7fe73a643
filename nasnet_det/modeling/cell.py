"""One cell module that interprets any cell of a genotype (nasnet_utils.NasNetABaseCell's logic)."""
from __future__ import annotations

from typing import List, Optional

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
        self.pre0 = ConvBN(in_channels, channels, 1)
        if prev_channels is None:
            self.pre1, prev_width = None, in_channels
        elif prev_is_larger:
            self.pre1, prev_width = FactorizedReduction(prev_channels, channels), channels
        elif prev_channels != channels:
            self.pre1, prev_width = ConvBN(prev_channels, channels, 1), channels
        else:
            self.pre1, prev_width = nn.Identity(), channels

        widths = [channels, prev_width]  # width of each hidden state
        self.blocks = nn.ModuleList()
        self.inputs: List[tuple] = []
        self.drop_ops: List[tuple] = []  # per block: whether op a / op b get drop path (not identity)
        for b in genotype.blocks:
            ops = [build_op(op, widths[i], channels, 2 if (reduction and i < 2) else 1, avg_pool_pad)
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
        h0 = self.pre0(F.relu(x))
        if self.pre1 is None:
            h1 = x
        elif isinstance(self.pre1, nn.Identity):
            h1 = prev
        else:
            h1 = self.pre1(F.relu(prev))
        keep = None if drop_prob is None else 1.0 - drop_prob * self.drop_path_ratio
        steps = [(block.op_a, block.op_b, inputs, block.norm, block.concat, drops)
                 for block, inputs, drops in zip(self.blocks, self.inputs, self.drop_ops)]
        states = run_blocks([h0, h1], steps, keep)
        out = []
        for i in self.concat:
            adapter = self.concat_adapters[str(i)] if str(i) in self.concat_adapters else None
            out.append(states[i] if adapter is None else adapter(states[i]))
        return torch.cat(out, 1)


def run_blocks(states: List[torch.Tensor], steps, keep: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
    """A cell's blocks, in order, on its two input states; returns every state.

    ``steps``: per block ``(op_a, op_b, (input_a, input_b), norm or None, concat, (drop_a, drop_b))``.
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
