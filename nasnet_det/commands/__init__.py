"""The command-line tools, one module each; ``nasnet-det COMMAND ...`` (or ``python -m nasnet_det``)
runs them, and ``tools/COMMAND.py`` in a checkout is a thin wrapper of the same ``main``."""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from .. import cli
from ..errors import UserError
from ..registry import Registry

# command -> its main(argv), lazy: modules load on use, so `nasnet-det search` never imports Detectron2.
# A plug-in adds one with COMMANDS.register("name", main, help=...) (nasnet-det name --plugin MODULE).
COMMANDS = Registry("command", UserError)
for _name, _module, _help in (
    ("search", "search", "search a cell (ppo, random, evolution, tpe, ...; local workers or Ray)"),
    ("rank", "rank", "score a list of cells with a ranking method (proxies, per-child, one-shot), with tau"),
    ("pretrain", "pretrain", "train a NASNet classifier with the paper's recipe, export it for detection"),
    ("train-net", "train_net", "train or evaluate a NASNet Faster R-CNN with Detectron2"),
    ("convert-pretrained", "convert_pretrained", "timm/Cadene ImageNet weights -> MODEL.WEIGHTS"),
    ("predict", "predict", "run a detector on photos: drawn images and predictions.json"),
    ("export", "export", "export a detector to TorchScript or ONNX, checked against eager"),
    ("check-dataset", "check_dataset", "decode every image and validate every record of a detection dataset"),
    ("draw-genotype", "draw_genotype", "draw a genotype's cells"),
    ("model-table", "model_table", "published networks: parameters and mult-adds against the released models"),
    ("latency-table", "latency_table", "time the parts of the cell space on this device; predict networks' latency"),
    ("fit-budget", "fit_budget", "the N@F of a cell that meets a latency target on a device (from a latency table)"),
    ("benchmark", "benchmark", "speed and memory against the reference implementations"),
    ("demo", "demo", "search -> pretrain -> detection -> evaluation on the CPU, with embedded data"),
):
    COMMANDS.register_lazy(_name, f"{__name__}.{_module}:main", help=_help)


def main(argv: Optional[Sequence[str]] = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: nasnet-det COMMAND [options]  (nasnet-det COMMAND --help)\n\ncommands:\n" + "\n".join(
        f"  {name:<20}{COMMANDS.help(name)}" for name in COMMANDS.names())
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return None
    name = argv[0].replace("_", "-")
    if name not in COMMANDS:
        sys.exit(f"error: {COMMANDS.unknown(argv[0])} (see nasnet-det --help)")
    command = COMMANDS.get(name)
    sys.argv[0] = f"nasnet-det {name}"
    return command(argv[1:])


def run() -> None:
    """The ``nasnet-det`` console script."""
    cli.run(main)
