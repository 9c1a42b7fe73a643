"""The fast CPU training paths (:mod:`nasnet_det.modeling.fast_cpu`) against PyTorch's kernels,
op by op at the shapes of NASNet-A Large (224 px, batch 2), then a whole training step of the
network with the paths off and on. Each pair is timed alternately; medians are reported."""
from __future__ import annotations

from typing import Callable, Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..modeling import fast_cpu
from .timing import BenchConfig, compare, time_alternately

# (channels, size, kernel) of NASNet-A Large's separable convs at 224 px, largest maps first
DEPTHWISE_SHAPES = [(42, 112, 5), (84, 56, 5), (168, 28, 3), (168, 28, 5), (336, 14, 5), (672, 7, 3), (1344, 7, 7)]
# (in, out, size) of its 1x1 convs: the separable units' and the cells' input convs
POINTWISE_SHAPES = [(84, 84, 56), (168, 168, 28), (1008, 168, 28), (336, 336, 14), (2016, 336, 14), (672, 672, 7),
                    (4032, 672, 7)]
POOL_SHAPES = [(168, 28), (336, 14), (672, 7)]


def _train_pair(reference: Callable, ours: Callable, x: torch.Tensor, params: List[torch.Tensor]):
    """Forward+backward of both functions of ``x`` (and ``params``)."""
    grad = torch.randn_like(reference(x))

    def run(fn):
        def step():
            for t in [x] + params:
                t.grad = None
            fn(x).backward(grad)
        return step
    return run(reference), run(ours)


def kernel_cases(batch: int = 2, shrink: int = 1) -> Dict[str, Tuple[Callable, Callable]]:
    """name -> (PyTorch's, ours), each a no-argument callable; ``shrink`` divides the map sizes."""
    cases = {}
    for c, size, k in DEPTHWISE_SHAPES:
        s = max(size // shrink, 4)
        x = torch.randn(batch, c, s, s)
        w = torch.randn(c, 1, k, k)
        grad = torch.randn(batch, c, s, s)
        cases[f"depthwise {k}x{k} weight grad, {c}x{s}x{s}"] = (
            lambda x=x, w=w, g=grad, k=k: torch.ops.aten.convolution_backward(
                g, x, w, None, (1, 1), (k // 2, k // 2), (1, 1), False, (0, 0), w.shape[0], (False, True, False)),
            lambda x=x, g=grad, k=k: fast_cpu.depthwise_weight_grad(x, g, (k, k), (1, 1), (k // 2, k // 2), (1, 1)))
    for cin, cout, size in POINTWISE_SHAPES:
        s = max(size // shrink, 4)
        x = torch.randn(batch, cin, s, s, requires_grad=True)
        w = torch.randn(cout, cin, 1, 1, requires_grad=True)
        cases[f"pointwise {cin}->{cout} fwd+bwd, {s}x{s}"] = _train_pair(
            lambda x, w=w: F.conv2d(x, w), lambda x, w=w: fast_cpu.pointwise_conv2d(x, w), x, [w])
    for c, size in POOL_SHAPES:
        s = max(size // shrink, 4)
        x = torch.randn(batch, c, s, s, requires_grad=True)
        cases[f"avg pool 3x3 fwd+bwd, {c}x{s}x{s}"] = _train_pair(
            lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False), lambda x: fast_cpu.avg_pool_same(x, 3), x, [])
    return cases


class _PyTorchKernels(nn.Module):
    """The network with the fast CPU paths off (the choice is made in forward; backward follows it)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        with fast_cpu.fast_cpu_paths(False):
            return self.model(x)


def benchmark_kernels(iters: int = 20, model_iters: int = 5, quick: bool = False, log=print) -> dict:
    """Per-op rows and (unless ``model_iters`` is 0) the whole-step row; returns every figure."""
    from .backbone import build_ours_nasnet_a_large

    torch.manual_seed(0)
    results = {}
    log(f"{'op (PyTorch vs ours), batch 2':<52} {'PyTorch ms':>10} {'ours ms':>8} {'speed-up':>8}")
    for name, pair in kernel_cases(shrink=4 if quick else 1).items():
        seconds = time_alternately(dict(zip(("reference", "ours"), pair)), 1 if quick else iters, warmup=1)
        reference, ours = seconds["reference"], seconds["ours"]
        results[name] = {"pytorch_s": reference, "ours_s": ours, "speedup": reference / ours}
        log(f"{name:<52} {reference * 1e3:>10.3f} {ours * 1e3:>8.3f} {reference / ours:>7.2f}x")
    if model_iters:
        cfg = BenchConfig(batch=2, size=64 if quick else 224, modes=("train",), iters=model_iters,
                          warmup=0 if quick else 1, memory=False)
        step = compare({"PyTorch kernels": lambda: _PyTorchKernels(build_ours_nasnet_a_large()),
                        "fast CPU paths": build_ours_nasnet_a_large}, cfg, log=log)["train"]
        reference, ours = step["PyTorch kernels"]["seconds_per_step"], step["fast CPU paths"]["seconds_per_step"]
        name = f"NASNet-A Large train step, {cfg.size} px"
        results[name] = {"pytorch_s": reference, "ours_s": ours, "speedup": reference / ours}
        log(f"{name:<52} {reference * 1e3:>10.1f} {ours * 1e3:>8.1f} {reference / ours:>7.2f}x")
    return results
