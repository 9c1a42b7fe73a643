"""Zero-cost proxies: a score for an untrained network from one minibatch (or none), in seconds.

Each proxy takes the child network as :func:`nasnet_det.search.child.train_child` would build it
(untrained, seeded) and one minibatch of the child's training data; a larger score means the proxy
expects a better network. Sources, and how each is computed here:

==============  ==============================================================================
``synflow``     Tanaka et al. 2020, "Pruning neural networks without any data by iteratively
                conserving synaptic flow"; as a NAS proxy: Abdelfattah et al. 2021, "Zero-Cost
                Proxies for Lightweight NAS" (samsungsaillab/zero-cost-nas). Data-free: every
                weight replaced by its absolute value, BN in eval mode, an all-ones input in
                float64; score = sum over weights of ``|w * dR/dw|`` with R the sum of the logits.
``naswot``      Mellor et al. 2021, "Neural Architecture Search without Training". The binary
                code of every ReLU's pre-activation (taken at each BatchNorm output, the
                pre-activation of the ReLU that follows it in this space) per image; kernel
                ``K = C C^T + (1-C)(1-C)^T``; score = log|det K|.
``jacob_cov``   Mellor et al. 2020 (the first NASWOT version), as in zero-cost-nas: the input
                Jacobians of the summed logits, one row per image; score = ``-sum(log(v + k) +
                1 / (v + k))`` over the eigenvalues ``v`` of their correlation matrix, k = 1e-5.
``snip``        Lee et al. 2019, "SNIP"; as in zero-cost-nas: ``sum |w * dL/dw|`` over conv and
                linear weights, L the cross-entropy of the minibatch.
``grad_norm``   zero-cost-nas: the sum over conv and linear weights of ``||dL/dw||_2``.
==============  ==============================================================================

The vote (:func:`vote`) is Abdelfattah et al.'s majority vote of synflow, jacob_cov and snip,
computed as the mean of each cell's rank under the three (it needs the whole list of cells).
"""
from __future__ import annotations

from typing import Callable, Dict, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..registry import Registry

# name -> proxy(model, x, y) -> float; a plug-in adds one with @proxy("name") (PROXIES.register, its
# help the docstring's first line), and rank --method / search --method take it
PROXIES = Registry("proxy", ConfigError)
VOTE = ("synflow", "jacob_cov", "snip")  # Abdelfattah et al.'s vote


def proxy(name: str):
    """``@proxy("name")``: register a proxy (``PROXIES.register``, help from its docstring)."""
    def register(fn: Callable) -> Callable:
        return PROXIES.register(name, fn, help=((fn.__doc__ or "").strip().splitlines() or [""])[0])
    return register


def _weights(model: nn.Module):
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.requires_grad]


@proxy("synflow")
def synflow(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model = model.double().eval()
    with torch.no_grad():
        for p in model.state_dict().values():
            if p.is_floating_point():
                p.abs_()
    model.zero_grad(set_to_none=True)
    out = model(torch.ones((1,) + tuple(x.shape[1:]), dtype=torch.float64))
    out.sum().backward()
    return float(sum((w * w.grad).abs().sum().item() for w in _weights(model) if w.grad is not None))


@proxy("naswot")
def naswot(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    codes = []

    def hook(module, inputs, output):
        codes.append((output.detach() > 0).flatten(1).double())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    try:
        model.train()
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    c = torch.cat(codes, 1)
    k = c @ c.t() + (1 - c) @ (1 - c).t()
    return float(torch.linalg.slogdet(k)[1])


@proxy("jacob_cov")
def jacob_cov(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.train()
    x = x.clone().requires_grad_(True)
    model(x).sum().backward()
    jac = x.grad.flatten(1).double()
    corr = torch.corrcoef(jac)
    corr = torch.nan_to_num(corr, nan=0.0)
    v = torch.linalg.eigvalsh(corr)
    k = 1e-5
    return float(-torch.sum(torch.log(v.clamp_min(0) + k) + 1.0 / (v.clamp_min(0) + k)))


def _loss_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    model.train()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    return [(w, w.grad) for w in _weights(model) if w.grad is not None]


@proxy("snip")
def snip(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(sum((w * g).abs().sum() for w, g in _loss_grads(model, x, y)))


@proxy("grad_norm")
def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(sum(g.norm() for _, g in _loss_grads(model, x, y)))


def vote(component_scores: Sequence[Dict[str, float]], names: Sequence[str] = VOTE) -> list:
    """Per cell, the mean of its rank (0 = worst) under each proxy in ``names``."""
    n = len(component_scores)
    total = [0.0] * n
    for name in names:
        order = sorted(range(n), key=lambda i: component_scores[i][name])
        for rank, i in enumerate(order):
            total[i] += rank / max(1, n - 1)
    return [t / len(names) for t in total]
