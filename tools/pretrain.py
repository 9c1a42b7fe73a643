#!/usr/bin/env python
"""Train a NASNet classifier from any genotype with the paper's recipe; export it for detection.

    python tools/pretrain.py                                    # NASNet-A Mobile shape on digits
    python tools/pretrain.py --genotype runs/search/genotype.json --arch 1@192 --stem cifar --out runs/pt
    torchrun --nproc_per_node 8 tools/pretrain.py --genotype nasnet_a --arch 4@1056 \\
        --data imagefolder:/data/imagenet --img-size 224 --epochs 250 --batch-size 32 --out runs/mobile

Writes OUT/checkpoint.pth (each epoch; --resume continues from it), OUT/metrics.json
(top1/top5/ema_top1/ema_top5 as fractions) and OUT/backbone.pth (EMA weights, for MODEL.WEIGHTS).
Every option of the recipe can be changed; see --help.
"""
import argparse
import dataclasses
import logging
import sys
import typing

from nasnet_det.errors import USER_ERRORS
from nasnet_det.pretrain import PretrainConfig, train


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(PretrainConfig)
    for f in dataclasses.fields(PretrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            base = typing.get_args(kind)[0] if typing.get_origin(kind) is typing.Union else kind
            p.add_argument(flag, type=base, default=f.default, help=f"default: {f.default}")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pth")
    return p


def main(argv=None):
    args = vars(parser().parse_args(argv))
    resume = args.pop("resume")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        metrics = train(PretrainConfig(**args), resume=resume)
    except USER_ERRORS as e:
        sys.exit(f"error: {e}")
    print({k: metrics[k] for k in ("top1", "top5", "ema_top1", "ema_top5")})


if __name__ == "__main__":
    sys.exit(main())
