"""A user's plug-in, outside the package: an op, a proxy, a combination of methods, a strategy, a
one-shot task, a dataset form, a command and a benchmark section, registered on import (tests/test_plugins.py names it with --plugin)."""
import torch.nn as nn

from nasnet_det.commands import COMMANDS
from nasnet_det.commands.benchmark import SECTIONS, Section
from nasnet_det.data.specs import FORMS, DatasetForm
from nasnet_det.modeling.ops import register_op
from nasnet_det.search.methods import COMBINATIONS
from nasnet_det.search.proxies import proxy
from nasnet_det.search.strategies import STRATEGIES, RandomSearch
from nasnet_det.search.tasks import TASKS


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


COMBINATIONS.register("my_width+prior", (("my_width", 1), ("prior", 1)))


class FirstOpFirst(RandomSearch):
    name = "first-op-first"


STRATEGIES.register("first-op-first", FirstOpFirst)


TASKS.register_lazy("my-task", "plugin_task", help="classification, marked (a plug-in's task)")


def count_ops(argv):
    """nasnet-det count-ops GENOTYPE: the ops of its normal cell, one per line (a plug-in's command)."""
    from nasnet_det import cli, genotypes

    parser = cli.ArgumentParser(prog="nasnet-det count-ops")
    parser.add_argument("genotype")
    args = parser.parse_args(argv)
    for op in sorted({op for b in genotypes.get(args.genotype).normal.blocks for op in b.ops}):
        print(op)


COMMANDS.register("count-ops", count_ops, help="the ops of a genotype's normal cell")


def half_digits(args, img_size, augment, holdout):
    """The digits' first half of training images (a plug-in's dataset form, loaded in every worker)."""
    import torch.utils.data

    from nasnet_det.data.classification import digits

    data = digits(img_size or 16, augment)
    data.train = torch.utils.data.Subset(data.train, range(len(data.train) // 2))
    return data


FORMS.register("half-digits", DatasetForm("classification", "half-digits", None, "plugin_example:half_digits"),
               help="the first half of the digits' training images")


@SECTIONS.register("op-params", help="parameters of one op at a width (a plug-in's benchmark section)")
class OpParams(Section):
    def add_arguments(self, p):
        p.add_argument("--op", default="my_sep3")
        p.add_argument("--channels", type=int, default=8)

    def run(self, args, parser):
        from nasnet_det.modeling.ops import build_op

        print(sum(w.numel() for w in build_op(args.op, args.channels, args.channels, 1).parameters()))
