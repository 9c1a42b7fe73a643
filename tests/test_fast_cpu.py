"""The fast CPU training paths compute what PyTorch's kernels compute, and only where they apply."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from nasnet_det.modeling import fast_cpu, nasnet_a_mobile
from nasnet_det.modeling.ops import Conv2dSame, Pool


def _grads(module, x, double=False):
    """Output and gradients (input, then parameters) of ``module(x)`` against a fixed cotangent."""
    if double:
        module, x = module.double(), x.double()
    x = x.detach().clone(memory_format=torch.preserve_format).requires_grad_()
    module.zero_grad(set_to_none=True)
    y = module(x)
    torch.manual_seed(1)
    y.backward(torch.randn(y.shape).to(y.dtype))
    out = [t.detach().float().clone() for t in [y, x.grad] + [p.grad for p in module.parameters()]]
    if double:
        module.float()
    return out, y.grad_fn


def _assert_close_to_float64(module, x, backward_name):
    fast, grad_fn = _grads(module, x)
    assert type(grad_fn).__name__ == backward_name  # the fast path ran
    truth, _ = _grads(module, x, double=True)  # float64 takes PyTorch's own kernels
    for got, want in zip(fast, truth):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


@pytest.mark.parametrize("kernel,stride,dilation,size", [(3, 1, 1, 9), (5, 2, 1, 9), (5, 2, 1, 10), (7, 2, 1, 11),
                                                         (3, 1, 2, 8), (5, 1, 1, 4)])
def test_depthwise_conv_matches_pytorch_in_float64(kernel, stride, dilation, size):
    torch.manual_seed(0)
    conv = Conv2dSame(6, 6, kernel, stride, dilation, groups=6)
    _assert_close_to_float64(conv, torch.randn(3, 6, size, size + 1), "_DepthwiseConv2dBackward")


def test_depthwise_conv_in_channels_last():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 9, 9).to(memory_format=torch.channels_last)
    _assert_close_to_float64(Conv2dSame(6, 6, 5, 2, groups=6), x, "_DepthwiseConv2dBackward")
    # oneDNN's own 3x3 weight gradient is the fast one in channels_last
    _assert_close_to_float64(Conv2dSame(6, 6, 3, groups=6), x, "ConvolutionBackward0")


@pytest.mark.parametrize("batch", [1, 3])
def test_pointwise_conv_matches_pytorch_in_float64(batch):
    torch.manual_seed(0)
    _assert_close_to_float64(Conv2dSame(5, 7, 1), torch.randn(batch, 5, 6, 9), "_PointwiseConv2dBackward")


def test_pointwise_conv_in_channels_last_keeps_the_layout():
    torch.manual_seed(0)
    conv, x = Conv2dSame(5, 7, 1), torch.randn(3, 5, 6, 9).to(memory_format=torch.channels_last)
    _assert_close_to_float64(conv, x, "PermuteBackward0")
    assert conv(x).is_contiguous(memory_format=torch.channels_last)


def test_pointwise_conv_without_input_gradient():
    torch.manual_seed(0)
    conv, x = Conv2dSame(5, 7, 1), torch.randn(2, 5, 4, 4)
    conv(x).sum().backward()
    fast = conv.weight.grad.clone()
    conv.weight.grad = None
    with fast_cpu.fast_cpu_paths(False):
        conv(x).sum().backward()
    torch.testing.assert_close(fast, conv.weight.grad)


@pytest.mark.parametrize("size", [(5, 7), (8, 8), (1, 3)])
def test_stride_one_avg_pool_excludes_padding_as_pytorch(size):
    torch.manual_seed(0)
    pool = Pool("avg", 3, 1, 4, 4)
    x = torch.randn(2, 4, *size, requires_grad=True)
    y = pool(x)
    assert type(y.grad_fn).__name__ == "MulBackward0"  # the box filter ran
    g = torch.randn_like(y)
    y.backward(g)
    x2 = x.detach().clone().requires_grad_()
    y2 = F.avg_pool2d(x2, 3, 1, 1, count_include_pad=False)
    y2.backward(g)
    torch.testing.assert_close(y, y2)
    torch.testing.assert_close(x.grad, x2.grad)


def test_fast_paths_stay_out_of_inference_tracing_autocast_and_when_off():
    conv = Conv2dSame(4, 4, 3, groups=4)
    x = torch.randn(1, 4, 6, 6)
    assert type(conv(x).grad_fn).__name__ == "_DepthwiseConv2dBackward"
    with torch.no_grad():
        assert conv(x).grad_fn is None
    with fast_cpu.fast_cpu_paths(False):
        assert type(conv(x).grad_fn).__name__ == "ConvolutionBackward0"
    assert type(conv(x).grad_fn).__name__ == "_DepthwiseConv2dBackward"  # the switch was restored
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert type(conv(x).grad_fn).__name__ == "ConvolutionBackward0"
    graph = torch.jit.trace(conv, x).graph
    assert "PythonOp" not in str(graph) and "aten::_convolution" in str(graph)


def test_network_gradients_equal_with_and_without_the_fast_paths():
    torch.manual_seed(0)
    model = nasnet_a_mobile(num_classes=10, drop_path_keep_prob=1.0).eval()  # eval: well-conditioned BN
    x = torch.randn(2, 3, 64, 64)

    def grads(enabled):
        model.zero_grad(set_to_none=True)
        with fast_cpu.fast_cpu_paths(enabled):
            (model(x) * torch.arange(10.0)).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    fast, plain = grads(True), grads(False)
    assert fast.keys() == plain.keys()
    for name in plain:
        torch.testing.assert_close(fast[name], plain[name], rtol=1e-3, atol=1e-4 * plain[name].abs().max().item(),
                                   msg=name)


def test_environment_variable_turns_the_paths_off_in_a_new_process():
    code = ("import torch; from nasnet_det.modeling.ops import Conv2dSame; "
            "print(type(Conv2dSame(4, 4, 3, groups=4)(torch.randn(1, 4, 6, 6)).grad_fn).__name__)")
    names = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "NASNET_DET_FAST_CPU": value}).stdout.strip() for value in ("0", "1")]
    assert names == ["ConvolutionBackward0", "_DepthwiseConv2dBackward"]
