"""Fast CPU training paths for the convolutions and pools of the search space's ops.

A CPU training step of NASNet spends its time in oneDNN kernels that are slow for the shapes NASNet
uses. Three are replaced here by equal computations that run through faster kernels
(``tools/benchmark.py kernels`` times each against PyTorch's, shape by shape):

- **Depthwise weight gradient.** oneDNN computes it 5-15x slower than the conv's forward pass.
  It is itself a depthwise convolution, one channel per (sample, channel) pair, with the output
  gradient as the kernel::

      dW[c, i, j] = sum_{n, h, w} x_pad[n, c, i*d + h*s, j*d + w*s] * dY[n, c, h, w]

  so :func:`depthwise_weight_grad` runs the forward kernel on views of the NCHW tensors (copies
  of channels_last ones) and sums over the batch. The input gradient stays with PyTorch's kernel,
  and so does the whole backward of 3x3 kernels in channels_last, where oneDNN's is fast.
- **Pointwise (1x1) convs** are one matrix product per image, ``W @ x[n]`` with ``x[n]`` a
  (C, H*W) view, and so are both gradients. :class:`_PointwiseConv2d` writes each result
  contiguous: autograd's own ``matmul`` backward returns transposed gradients, and the ReLU
  backward that reads them gets slower than the products saved. In channels_last the whole batch
  is one (N*H*W, C) matrix, and autograd's products keep that layout.
- **Stride-1 average pooling** (padding not counted, as TF) is a depthwise conv with a box of ones,
  times the inverse count of real cells under each window (:func:`avg_pool_same`).

They apply only to a CPU fp32 step with autograd on, outside tracing, scripting,
``torch.compile`` and autocast (:func:`fast_path`). Everywhere else the ops run PyTorch's own
modules, so exports, FLOP counts, channels_last + bf16 and GPU runs see ordinary convolutions.
:func:`fast_cpu_paths` turns them off within a block, and ``NASNET_DET_FAST_CPU=0`` in every process
(for comparisons and for bisecting a numerical question).
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, Tuple

import torch
import torch.nn.functional as F

_Int2 = Tuple[int, int]
_enabled = os.environ.get("NASNET_DET_FAST_CPU", "1") != "0"


@contextlib.contextmanager
def fast_cpu_paths(enabled: bool) -> Iterator[None]:
    """Within the block, use the fast CPU paths (``True``, the default) or PyTorch's modules."""
    global _enabled
    previous, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = previous


def fast_path(x: torch.Tensor) -> bool:
    """Whether an op fed ``x`` computes a CPU fp32 training step (see the module doc)."""
    return (_enabled and x.device.type == "cpu" and x.dtype == torch.float32 and torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu") and not torch.jit.is_tracing()
            and not torch.jit.is_scripting() and not torch.compiler.is_compiling())


def depthwise_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel: _Int2, stride: _Int2,
                          padding: _Int2, dilation: _Int2) -> torch.Tensor:
    """The gradient of a depthwise conv's ``(C, 1, kh, kw)`` weight, given its input and the
    gradient of its output."""
    n, c, h, w = x.shape
    inputs = x.contiguous().view(1, n * c, h, w)
    kernels = grad_out.contiguous().view(n * c, 1, grad_out.shape[2], grad_out.shape[3])
    # the forward conv's stride becomes this conv's dilation and vice versa
    grad = F.conv2d(inputs, kernels, stride=dilation, padding=padding, dilation=stride, groups=n * c)
    # rows/columns past the kernel come from padding the forward conv never reached
    grad = grad[..., :kernel[0], :kernel[1]].reshape(n, c, kernel[0], kernel[1]).sum(0)
    return grad.unsqueeze(1)


class _DepthwiseConv2d(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, weight, stride, padding, dilation):
        ctx.save_for_backward(x, weight)
        ctx.conv = (stride, padding, dilation)
        return F.conv2d(x, weight, None, stride, padding, dilation, weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.conv
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, stride, padding, dilation, False, (0, 0), weight.shape[0],
                (True, False, False))[0]
        if ctx.needs_input_grad[1]:
            grad_w = depthwise_weight_grad(x, grad_out, weight.shape[-2:], stride, padding, dilation)
        return grad_x, grad_w, None, None, None


def _onednn_fast(x: torch.Tensor, weight: torch.Tensor) -> bool:
    # oneDNN's own depthwise weight gradient is fast in one case: channels_last with a 3x3 kernel
    return weight.shape[-1] <= 3 and x.is_contiguous(memory_format=torch.channels_last)


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, stride: _Int2, padding: _Int2,
                     dilation: _Int2) -> torch.Tensor:
    """``F.conv2d(x, weight, groups=C)`` (bias-free, one filter per channel)."""
    if weight.requires_grad and fast_path(x) and not _onednn_fast(x, weight):
        return _DepthwiseConv2d.apply(x, weight, tuple(stride), tuple(padding), tuple(dilation))
    return F.conv2d(x, weight, None, stride, padding, dilation, weight.shape[0])


# 1x1 convs on maps of at most this many pixels run as one batched product per call
BATCHED_PIXELS = 256


class _PointwiseConv2d(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        n, c, h, w = x.shape
        matrix = weight.view(weight.shape[0], c)
        if h * w <= BATCHED_PIXELS:  # small maps: one batched product (a loop of n tiny ones is all overhead)
            return torch.matmul(matrix, x.view(n, c, h * w)).view(n, -1, h, w)
        out = x.new_empty(n, weight.shape[0], h * w)
        for i in range(n):
            torch.mm(matrix, x[i].view(c, h * w), out=out[i])
        return out.view(n, -1, h, w)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        n, c, h, w = x.shape
        matrix = weight.view(weight.shape[0], c)
        grad_out = grad_out.contiguous().view(n, -1, h * w)
        inputs = x.view(n, c, h * w)
        grad_x = grad_w = None
        if h * w <= BATCHED_PIXELS:
            if ctx.needs_input_grad[0]:
                grad_x = torch.matmul(matrix.t(), grad_out).view(x.shape)
            if ctx.needs_input_grad[1]:
                grad_w = torch.bmm(grad_out, inputs.transpose(1, 2)).sum(0).view(weight.shape)
            return grad_x, grad_w
        if ctx.needs_input_grad[0]:
            grad_x = x.new_empty(n, c, h * w)
            for i in range(n):
                torch.mm(matrix.t(), grad_out[i], out=grad_x[i])
            grad_x = grad_x.view(x.shape)
        if ctx.needs_input_grad[1]:
            grad_w = torch.mm(grad_out[0], inputs[0].t())
            for i in range(1, n):
                grad_w.addmm_(grad_out[i], inputs[i].t())
            grad_w = grad_w.view(weight.shape)
        return grad_x, grad_w


def pointwise_conv2d(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.conv2d(x, weight)`` for a bias-free 1x1 conv of stride 1."""
    if fast_path(x) and (weight.requires_grad or x.requires_grad):
        if x.is_contiguous():
            return _PointwiseConv2d.apply(x, weight)
        if x.is_contiguous(memory_format=torch.channels_last):
            # channels_last: the whole batch is one (N*H*W, C) matrix; autograd's products keep the layout
            n, c, h, w = x.shape
            pixels = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
            out = torch.mm(pixels, weight.view(weight.shape[0], c).t())
            return out.view(n, h, w, -1).permute(0, 3, 1, 2)
    return F.conv2d(x, weight)


def avg_pool_same(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Stride-1 average pooling over a ``kernel`` x ``kernel`` window, zero-padded symmetrically,
    the padding not counted: ``F.avg_pool2d(x, kernel, 1, kernel // 2, count_include_pad=False)``."""
    pad = kernel // 2
    if not (x.requires_grad and fast_path(x)):
        return F.avg_pool2d(x, kernel, 1, pad, count_include_pad=False)
    channels, size = x.shape[1], x.shape[-2:]
    box = x.new_ones(channels, 1, kernel, kernel)
    count = F.conv2d(x.new_ones((1, 1) + size), box[:1], padding=pad)
    return F.conv2d(x, box, None, 1, pad, 1, channels) * count.reciprocal_()
