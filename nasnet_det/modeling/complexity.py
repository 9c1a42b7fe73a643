"""Parameter and mult-add counts as the paper reports them."""
from __future__ import annotations

from typing import Optional

import torch
from fvcore.nn import FlopCountAnalysis


def count_params(model: torch.nn.Module, exclude_prefix: Optional[str] = "aux_head.") -> int:
    """Parameters, without the auxiliary head (the paper's counts leave it out)."""
    return sum(p.numel() for n, p in model.named_parameters()
               if not (exclude_prefix and n.startswith(exclude_prefix)))


def count_mult_adds(model: torch.nn.Module, size: int, in_chans: int = 3) -> int:
    """Mult-adds of convolutions and the final linear layer at ``size`` x ``size`` (fvcore counts one
    per multiply-accumulate), for one image in eval mode."""
    was_training = model.training
    model.eval()
    try:
        fca = FlopCountAnalysis(model, torch.zeros(1, in_chans, size, size))
        fca.unsupported_ops_warnings(False)
        fca.uncalled_modules_warnings(False)
        ops = fca.by_operator()
    finally:
        model.train(was_training)
    return int(ops.get("conv", 0) + ops.get("linear", 0))
