"""A user's plug-in, outside the package: an op, a proxy and a strategy, registered on import
(tests/test_plugins.py names it with --plugin)."""
import torch.nn as nn

from nasnet_det.modeling.ops import register_op
from nasnet_det.search.proxies import proxy
from nasnet_det.search.strategies import STRATEGIES, RandomSearch


class Sep3Twice(nn.Module):
    def __init__(self, in_channels, channels, stride, avg_pool_pad="exclude"):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x):
        return self.body(x)


register_op("my_sep3", Sep3Twice)


@proxy("my_width")
def my_width(model, x, y):
    """the number of conv weights (a plug-in's proxy)"""
    return float(sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d)))


class FirstOpFirst(RandomSearch):
    name = "first-op-first"


STRATEGIES.register("first-op-first", FirstOpFirst)
