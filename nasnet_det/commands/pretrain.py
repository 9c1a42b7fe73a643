"""Train a NASNet classifier from any genotype with the paper's recipe; export it for detection.

    python tools/pretrain.py                                    # NASNet-A Mobile shape on digits
    python tools/pretrain.py --genotype runs/search/genotype.json --arch 1@192 --stem cifar --out runs/pt
    torchrun --nproc_per_node 8 tools/pretrain.py --genotype nasnet_a --arch 4@1056 \\
        --data imagefolder:/data/imagenet --img-size 224 --epochs 250 --batch-size 32 --out runs/mobile

Writes OUT/checkpoint.pth (each epoch; --resume continues from it), OUT/metrics.json
(top1/top5/ema_top1/ema_top5 as fractions) and OUT/backbone.pth (EMA weights, for MODEL.WEIGHTS).
Every option of the recipe can be changed; see --help.
"""
import dataclasses
import logging

from .. import cli
from ..modeling.layout import STEMS
from ..pretrain import PretrainConfig, train


def parser():
    p = cli.ArgumentParser(description=__doc__)
    cli.add_dataclass_options(p, PretrainConfig, choices={"stem": STEMS})
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pth")
    return p


def main(argv=None):
    args = vars(parser().parse_args(argv))
    resume = args.pop("resume")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    metrics = train(PretrainConfig(**{f.name: args[f.name] for f in dataclasses.fields(PretrainConfig)}), resume=resume)
    print({k: metrics[k] for k in ("top1", "top5", "ema_top1", "ema_top5")})


if __name__ == "__main__":
    cli.run(main)
