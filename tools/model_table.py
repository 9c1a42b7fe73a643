#!/usr/bin/env python
"""The published genotypes as networks, measured against the released models (params, mult-adds)."""
import time

from nasnet_det import cli, genotypes
from nasnet_det.modeling import CONFIGS, build_nasnet
from nasnet_det.modeling.complexity import count_mult_adds, count_params

# What the released models measure (ports on CPU, ../shared/REFERENCE.md section 2): params, mult-adds.
RELEASED = {
    "nasnet_a_large": ("6@4032", 331, 88.753e6, 23.783e9),
    "nasnet_a_mobile": ("4@1056", 224, 5.290e6, 563.6e6),
    "nasnet_a_cifar": ("6@768", 32, 3.33e6, None),
    "pnasnet_5_large": ("4@4320", 331, 86.06e6, 24.94e9),
}


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__)
    parser.parse_args(argv)
    print("Published genotypes:", ", ".join(f"{n} ({genotypes.get(n).source})" for n in genotypes.names()))
    print()
    header = f"{'model':<16} {'N@F':>7} {'px':>4} {'params (ours)':>14} {'released':>10} {'mult-adds (ours)':>17} {'released':>10} {'s':>5}"
    print(header)
    print("-" * len(header))
    for name, (arch, size, params, madds) in RELEASED.items():
        start = time.time()
        options = dict(CONFIGS[name])
        model = build_nasnet(options.pop("genotype"), **{**options, "num_classes": 1000 if size > 32 else 10})
        ours_p = count_params(model)
        ours_m = count_mult_adds(model, size) if madds else None
        print(f"{name:<16} {arch:>7} {size:>4} {ours_p / 1e6:>13.3f}M {params / 1e6:>9.3f}M "
              f"{(f'{ours_m / 1e9:.3f}B' if ours_m else '-'):>17} {(f'{madds / 1e9:.3f}B' if madds else '-'):>10} "
              f"{time.time() - start:>5.1f}")


if __name__ == "__main__":
    cli.run(main)
