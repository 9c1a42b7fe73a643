"""The published genotypes as networks, measured against the released models (params, mult-adds)."""
import time

from .. import cli, genotypes
from ..modeling import PUBLISHED, build_nasnet
from ..modeling.complexity import count_mult_adds, count_params


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__)
    parser.parse_args(argv)
    print("Published genotypes:", ", ".join(f"{n} ({genotypes.get(n).source})" for n in genotypes.names()))
    print()
    header = (f"{'model':<16} {'N@F':>7} {'px':>4} {'params (ours)':>14} {'released':>10} {'mult-adds (ours)':>17} "
              f"{'released':>10} {'s':>5}  released model")
    print(header)
    print("-" * len(header))
    for name, published in PUBLISHED.items():
        start = time.time()
        size = published.options["img_size"]
        model = build_nasnet(published.genotype, **{"num_classes": 1000, **published.options})
        ours_p = count_params(model)
        ours_m = count_mult_adds(model, size) if published.mult_adds else None
        madds = published.mult_adds
        print(f"{name:<16} {published.arch():>7} {size:>4} {ours_p / 1e6:>13.3f}M {published.params / 1e6:>9.3f}M "
              f"{(f'{ours_m / 1e9:.3f}B' if ours_m else '-'):>17} {(f'{madds / 1e9:.3f}B' if madds else '-'):>10} "
              f"{time.time() - start:>5.1f}  {published.reference}")


if __name__ == "__main__":
    cli.run(main)
