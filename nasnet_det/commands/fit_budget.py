"""Scale a cell to a latency budget, as the paper scales N and F by hand: the N@F (normal cells per
stage, penultimate width) of the largest network of that cell whose predicted latency on the device
meets the target, from a latency table (parts the table lacks are timed on this device).

    nasnet-det fit-budget --genotype runs/search/genotype.json --target 80 --size 224 224
    nasnet-det fit-budget --genotype nasnet_a --target 30 --table phone_table.jsonl
"""
from __future__ import annotations

import os

from .. import cli
from ..errors import UserError

# first-stage filter counts tried for each N (latency grows with F; the largest that fits is kept)
FILTERS = (4, 6, 8, 12, 16, 20, 24, 32, 44, 56, 64, 84, 96, 128, 168, 192, 256)


def argument_parser():
    p = cli.ArgumentParser(prog="nasnet-det fit-budget", description=__doc__)
    p.add_argument("--genotype", required=True, help="a published name or a genotype.json")
    p.add_argument("--target", type=float, required=True, help="latency budget in ms (one forward)")
    p.add_argument("--table", default=None, help="a latency table (default: a new one in --out, timed here)")
    p.add_argument("--out", default="runs/latency_table.jsonl", help="where a table timed here is kept (resumable)")
    p.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"),
                   help="input size of a table timed here (default: 224 224)")
    p.add_argument("--max-cells", type=int, default=6, help="largest N tried (default: 6)")
    p.add_argument("--network", default="classifier",
                   help="classifier, or detector:CONFIG (the config's Faster R-CNN FPN around the cell; default: classifier)")
    return p


def fit(table, genotype, target: float, max_cells: int = 6, log=print, network: str = "classifier") -> dict:
    """For each N, the largest F whose predicted latency meets ``target`` (bisection over FILTERS);
    returns the best (most mult-adds) candidate, with every N's."""
    from .. import genotypes
    from ..modeling.complexity import count_mult_adds
    from ..modeling.layout import format_arch
    from ..search import latency

    g = genotypes.get(genotype)
    reference = genotypes.get("nasnet_a")

    def predict(n, f):  # the latency module reads N@F as NASNet-A's
        return latency.predict(table, g, format_arch(reference, 3 * n, f), network=network)

    found, fastest = [], None
    for n in range(1, max_cells + 1):
        lo, hi, best = 0, len(FILTERS) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            ms = predict(n, FILTERS[mid])
            fastest = ms if fastest is None else min(fastest, ms)
            if ms <= target:
                best, lo = (FILTERS[mid], ms), mid + 1
            else:
                hi = mid - 1
        if best is None:
            continue
        net = latency.classifier_net(g, format_arch(reference, 3 * n, best[0]), table.size)
        arch = format_arch(g, 3 * n, best[0])  # in the cell's own reading: MODEL.NASNET.ARCH with this genotype
        found.append({"arch": arch, "num_cells": n, "filters": best[0], "latency_ms": best[1],
                      "mult_adds": count_mult_adds(net, table.size[0])})
        log(f"  N={n}: {arch:>8} (F first stage {best[0]}) predicts {best[1]:.2f} ms, "
            f"{found[-1]['mult_adds'] / 1e6:.1f}M mult-adds")
    if not found:
        raise UserError(f"--target {target:g} ms: no N@F of {g.name or 'this cell'} meets it at "
                        f"{table.size[0]}x{table.size[1]}; the smallest tried predicts {fastest:.1f} ms")
    return {"best": max(found, key=lambda c: c["mult_adds"]), "candidates": found}


def main(argv=None):
    args = argument_parser().parse_args(argv)
    if not args.target > 0 or args.max_cells < 1:
        raise UserError(f"--target {args.target} --max-cells {args.max_cells}: give a positive target and at least 1 cell")
    from .. import genotypes
    from ..search import latency

    genotypes.get(args.genotype)  # a bad genotype is one line before anything is timed
    latency.load_network(args.network)
    if args.table and not os.path.isfile(args.table):
        raise UserError(f"latency table not found: {args.table} (time one with nasnet-det latency-table on the target "
                        f"device, or leave --table out to time one on this machine into --out)")
    if args.table:
        table = latency.LatencyTable(args.table, carried=True, network=args.network)
    else:
        table = latency.LatencyTable(args.out, "cpu", tuple(args.size), 1, network=args.network)
    result = fit(table, args.genotype, args.target, args.max_cells, network=args.network)
    b = result["best"]
    print(f"{args.genotype}: {b['arch']} at {table.size[0]}x{table.size[1]} predicts {b['latency_ms']:.2f} ms "
          f"(target {args.target:g} ms, {b['mult_adds'] / 1e6:.1f}M mult-adds); use MODEL.NASNET.ARCH {b['arch']}")
    return result


if __name__ == "__main__":
    cli.run(main)
