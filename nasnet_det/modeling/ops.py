"""The ops of the NASNet search space as modules, with TF 'SAME' padding.

:data:`OPS` is the op table: op name -> constructor, the registry that is also the genotype
vocabulary (:data:`nasnet_det.genotypes.OPS`); a new op is one :func:`register_op` call.

Conventions shared with :mod:`.cell`:

- Every op maps ``in_channels`` to ``channels`` and applies ``stride`` itself.
- Ops whose first step is a ReLU (convolutions, and identity when it has to become a 1x1 conv) do
  not contain that ReLU: they are :class:`Op` modules with ``relu_input = True``, and the cell
  feeds them ``relu(state)``, computed once per state. A NASNet cell reads each input state with up to five such ops, so
  sharing the ReLU saves both time and the activation memory autograd keeps for each copy.
- Weight layout matches the released TF model op for op (separable convs applied twice, the first
  pointwise conv already mapping to the output width, pools followed by 1x1 conv + BN only when the
  width changes, no conv bias, BN eps 1e-3), so TF-derived checkpoints load by renaming keys.

TF 'SAME' padding with stride 2 is asymmetric (the extra row/column goes to the bottom/right) and
depends on the input size, so it is computed at run time; any input size works. TF's average
pooling does not count padded cells; ``avg_pool_pad="include"`` counts them instead, as timm's port
does for its stride-2 average pools (needed to reproduce timm's outputs exactly).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import genotypes
from ..errors import ConfigError
from .fast_cpu import avg_pool_same, depthwise_conv2d, pointwise_conv2d
from .layout import AVG_POOL_PAD

BN_EPS = 1e-3

_Int2 = Union[int, Tuple[int, int]]


def _pair(v: _Int2) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> Tuple[int, int]:
    # ceil(size / stride) without floats (an int under torch.compile) and without negative operands:
    # ONNX's integer Div truncates, so -(-size // stride) would export as a floor
    out = (size + stride - 1) // stride
    total = (out - 1) * stride + (kernel - 1) * dilation + 1 - size
    if (kernel - 1) * dilation + 1 < stride:  # only then can it be negative; elided, the sizes stay
        total = max(total, 0)                 # simple enough for torch.export to prove branches equal
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: Tuple[int, int], stride: Tuple[int, int],
             dilation: Tuple[int, int] = (1, 1), value: float = 0.0) -> torch.Tensor:
    top, bottom = _same_pads(x.shape[-2], kernel[0], stride[0], dilation[0])
    left, right = _same_pads(x.shape[-1], kernel[1], stride[1], dilation[1])
    # a zero pad is skipped in eager runs; under torch.export / torch.compile the sizes may be
    # symbolic, and a branch on them would fix the input size: there the pad is always applied
    if torch.compiler.is_compiling() or top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=value)
    return x


def border_counts(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """The share of real input cells in each window of a 'SAME' average pool over ``x``'s map: what
    TF's average (padding excluded) divides by, where the padded pool divided by k*k."""
    ones = torch.ones((1, 1) + tuple(x.shape[-2:]), dtype=x.dtype, device=x.device)
    return F.avg_pool2d(pad_same(ones, (kernel, kernel), (stride, stride)), kernel, stride)


def _static_same(kernel: Tuple[int, int], stride: Tuple[int, int], dilation: Tuple[int, int]):
    """Symmetric padding equal to TF 'SAME', or None where only run-time padding is exact."""
    if stride != (1, 1):
        return None
    return tuple((k - 1) * d // 2 for k, d in zip(kernel, dilation))


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TF 'SAME' padding; static where that is exact (stride 1, odd kernel)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: _Int2, stride: _Int2 = 1,
                 dilation: _Int2 = 1, groups: int = 1):
        kernel_size, stride, dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
        static = _static_same(kernel_size, stride, dilation)
        super().__init__(in_channels, out_channels, kernel_size, stride, static or 0, dilation, groups,
                         bias=False)
        self.dynamic_pad = static is None and kernel_size != (1, 1)
        # the separable units' convs, the bulk of a training step, have fast CPU paths (.fast_cpu)
        self.is_depthwise = groups == in_channels == out_channels and groups > 1
        self.is_pointwise = kernel_size == stride == (1, 1) and groups == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic_pad:
            x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        if self.bias is None:  # BN folding adds a bias; those convs run as plain convs
            if self.is_depthwise:
                return depthwise_conv2d(x, self.weight, self.stride, self.padding, self.dilation)
            if self.is_pointwise:
                return pointwise_conv2d(x, self.weight)
        return super().forward(x)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class Op(nn.Module):
    """An op of the search space. ``relu_input``: the op starts with a ReLU that the cell applies
    for it (once per input state, shared by every op that reads the state)."""

    relu_input: bool = False


def reads_relu(module: nn.Module) -> bool:
    """Whether the cell must feed ``module`` the ReLU of its input (plain modules: no)."""
    return isinstance(module, Op) and module.relu_input


class ConvBN(Op):
    """conv -> BN. With ``relu_input`` the cell feeds it relu(x): the paper's ReLU-conv-BN unit."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: _Int2 = 1, stride: int = 1,
                 relu_input: bool = True):
        super().__init__()
        self.relu_input = relu_input
        self.conv = Conv2dSame(in_channels, out_channels, kernel_size, stride)
        self.bn = batch_norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class ConvPairBN(Op):
    """1xk conv then kx1 conv, then BN (the paper's '1x3 then 3x1' and '1x7 then 7x1' ops)."""

    relu_input = True

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int):
        super().__init__()
        self.conv_1xk = Conv2dSame(in_channels, out_channels, (1, kernel), (1, stride))
        self.conv_kx1 = Conv2dSame(out_channels, out_channels, (kernel, 1), (stride, 1))
        self.bn = batch_norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv_kx1(self.conv_1xk(x)))


class SeparableUnit(nn.Module):
    """depthwise KxK -> pointwise 1x1 -> BN, no activation in between (as slim.separable_conv2d)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, dilation: int = 1):
        super().__init__()
        self.depthwise = Conv2dSame(in_channels, in_channels, kernel, stride, dilation, groups=in_channels)
        self.pointwise = Conv2dSame(in_channels, out_channels, 1)
        self.bn = batch_norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pointwise(self.depthwise(x)))


class SeparableConv(Op):
    """The paper's separable op: [ReLU -> separable unit] applied ``repeats`` times.

    Only the first unit has the stride, and its pointwise conv already maps to the output width.
    ``repeats=1, dilation=2`` gives the dilated separable conv ('dil_conv_3x3', as DARTS defines it).
    """

    relu_input = True

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int,
                 repeats: int = 2, dilation: int = 1):
        super().__init__()
        self.layers = nn.ModuleList(
            SeparableUnit(in_channels if i == 0 else out_channels, out_channels, kernel,
                          stride if i == 0 else 1, dilation)
            for i in range(repeats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers[0](x)
        for layer in self.layers[1:]:
            # in place is safe: BN's backward needs its input, not the output we overwrite
            x = layer(F.relu(x, inplace=True))
        return x


class Pool(Op):
    """TF 'SAME' max/avg pooling; then 1x1 conv + BN when the width changes (no ReLU, as in TF)."""

    relu_input = False

    def __init__(self, kind: str, kernel: int, stride: int, in_channels: int, out_channels: int,
                 avg_pool_pad: str = "exclude"):
        super().__init__()
        if avg_pool_pad not in AVG_POOL_PAD:
            raise ConfigError(f"avg_pool_pad must be one of {AVG_POOL_PAD}, got {avg_pool_pad!r}")
        self.kind, self.kernel, self.stride = kind, kernel, stride
        self.count_pad = avg_pool_pad == "include"
        if in_channels != out_channels:
            self.conv = Conv2dSame(in_channels, out_channels, 1)
            self.bn = batch_norm(out_channels)
        else:
            self.conv = self.bn = None

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel, self.stride
        if s == 1:  # symmetric padding is exact; PyTorch excludes it from averages, as TF does
            if self.kind == "max":
                return F.max_pool2d(x, k, 1, k // 2)
            return avg_pool_same(x, k)
        if self.kind == "max":
            return F.max_pool2d(pad_same(x, (k, k), (s, s), value=float("-inf")), k, s)
        out = F.avg_pool2d(pad_same(x, (k, k), (s, s)), k, s)
        if self.count_pad:
            return out
        return out / border_counts(x, k, s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._pool(x)
        if self.conv is not None:
            x = self.bn(self.conv(x))
        return x


class FactorizedReduction(Op):
    """Halve the resolution without losing half the pixels (nasnet_utils.factorized_reduction).

    Two 1x1 convs read the even and the odd pixel grid (the second shifted by one pixel, zero padded
    at the bottom/right); their outputs are concatenated and batch-normalised.
    """

    def __init__(self, in_channels: int, out_channels: int, relu_input: bool = True):
        super().__init__()
        self.relu_input = relu_input
        if out_channels < 2:  # a 0-channel conv path cannot run a forward: say so at build time
            raise ConfigError(f"a factorized reduction to {out_channels} channel(s) cannot split them into its two "
                              "paths: the network is too narrow for this genotype; use more filters (a wider N@F "
                              "or num_conv_filters)")
        half = out_channels // 2
        self.conv_path1 = Conv2dSame(in_channels, half, 1)
        self.conv_path2 = Conv2dSame(in_channels, out_channels - half, 1)  # odd width: path 2 gets +1
        self.bn = batch_norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path1 = x[:, :, ::2, ::2]
        path2 = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))[:, :, ::2, ::2]
        return self.bn(torch.cat([self.conv_path1(path1), self.conv_path2(path2)], 1))


def identity(in_channels: int, channels: int, stride: int, avg_pool_pad: str) -> nn.Module:
    if stride == 1 and in_channels == channels:
        return nn.Identity()
    return ConvBN(in_channels, channels, 1, stride)  # TF: 'none' with stride or width change


# The shipped ops, in the paper's order (section 3), then the extra ops published cells of the same
# space use. Each entry: (in_channels, channels, stride, avg_pool_pad) -> module. They are the lazy
# entries of the op registry (nasnet_det.genotypes.OPS), which holds the names genotypes may use.
BUILTIN_OPS: Dict[str, Callable[[int, int, int, str], nn.Module]] = {
    "identity": identity,
    "conv_1x3_3x1": lambda c_in, c, stride, pad: ConvPairBN(c_in, c, 3, stride),
    "conv_1x7_7x1": lambda c_in, c, stride, pad: ConvPairBN(c_in, c, 7, stride),
    "dil_conv_3x3": lambda c_in, c, stride, pad: SeparableConv(c_in, c, 3, stride, repeats=1, dilation=2),
    "avg_pool_3x3": lambda c_in, c, stride, pad: Pool("avg", 3, stride, c_in, c, pad),
    "max_pool_3x3": lambda c_in, c, stride, pad: Pool("max", 3, stride, c_in, c, pad),
    "max_pool_5x5": lambda c_in, c, stride, pad: Pool("max", 5, stride, c_in, c, pad),
    "max_pool_7x7": lambda c_in, c, stride, pad: Pool("max", 7, stride, c_in, c, pad),
    "conv_1x1": lambda c_in, c, stride, pad: ConvBN(c_in, c, 1, stride),
    "conv_3x3": lambda c_in, c, stride, pad: ConvBN(c_in, c, 3, stride),
    "sep_conv_3x3": lambda c_in, c, stride, pad: SeparableConv(c_in, c, 3, stride),
    "sep_conv_5x5": lambda c_in, c, stride, pad: SeparableConv(c_in, c, 5, stride),
    "sep_conv_7x7": lambda c_in, c, stride, pad: SeparableConv(c_in, c, 7, stride),
    "dil_conv_5x5": lambda c_in, c, stride, pad: SeparableConv(c_in, c, 5, stride, repeats=1, dilation=2),  # DARTS
}

# the op table: op name -> constructor, one registry with the genotype vocabulary
OPS = genotypes.OPS
if tuple(BUILTIN_OPS) != genotypes.op_names()[: len(BUILTIN_OPS)]:  # the shipped table is the shipped vocabulary
    raise ImportError(f"the op table {tuple(BUILTIN_OPS)} and the genotype vocabulary {genotypes.op_names()} differ")


def register_op(name: str, constructor: Callable[[int, int, int, str], nn.Module] = None):
    """A new op: ``constructor(in_channels, channels, stride, avg_pool_pad) -> module`` under ``name``
    (``OPS.register``; without ``constructor``, a decorator). Put it in a module given to ``--plugin``
    so that the search's workers and Ray tasks have it too."""
    return OPS.register(name, constructor)


def build_op(name: str, in_channels: int, channels: int, stride: int,
             avg_pool_pad: str = "exclude") -> nn.Module:
    """Op ``name`` of the table reading ``in_channels``, writing ``channels``."""
    return OPS.get(name)(in_channels, channels, stride, avg_pool_pad)


def drop_path(x: torch.Tensor, keep_prob: torch.Tensor) -> torch.Tensor:
    """Drop the whole tensor per example with probability 1 - keep_prob, rescale the rest."""
    mask = torch.rand((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device) < keep_prob
    return x * mask.to(x.dtype) / keep_prob


# Shape decisions (TF 'SAME' padding from the input's size) and the fast CPU dispatch (on the device
# and dtype) are leaves of a torch.fx trace: a traced network keeps them as calls, decided per input
# (timm's features_only='fx', create_feature_extractor, torch.fx.symbolic_trace). Eager calls are
# unchanged.
for _leaf in ("pad_same", "border_counts", "depthwise_conv2d", "pointwise_conv2d", "avg_pool_same", "drop_path"):
    torch.fx.wrap(_leaf)


def combine_norm(combine: str, channels: int) -> Optional[nn.Module]:
    """Norm applied after the add for the NASNet-B/C combine ops."""
    if combine == "add_layernorm":
        return nn.GroupNorm(1, channels, eps=BN_EPS)  # LayerNorm over (C, H, W) of each example
    if combine == "add_instancenorm":
        return nn.InstanceNorm2d(channels, eps=BN_EPS, affine=True)
    return None
