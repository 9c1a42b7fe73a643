"""Time every part the cells of the NASNet space use at one N@F and input size on this device (a
latency table for a latency-constrained search), and predict networks' latency from it.

    nasnet-det latency-table --device cpu --size 224 224 --arch 4@1056 --out table.jsonl
    nasnet-det latency-table --out table.jsonl --predict nasnet_a pnasnet_5 runs/search/genotype.json
    nasnet-det latency-table --network detector:nasnet_a_mobile_fpn_frcnn.yaml --size 640 640 --out det640.jsonl

Resumable: run the same command again after a kill and it continues where it stopped. The table's
header records the device, torch version and thread count; a table from another machine is refused
with a line naming each difference.
"""
from __future__ import annotations

import torch

from .. import cli
from ..errors import UserError
from ..io import FolderLock


def argument_parser():
    parser = cli.ArgumentParser(prog="nasnet-det latency-table", description=__doc__)
    parser.add_argument("--out", required=True, help="the table (JSONL), created or continued")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to time (default: cpu)")
    parser.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"),
                        help="input size in pixels (default: 224 224)")
    parser.add_argument("--arch", default="4@1056",
                        help="N@F read as NASNet-A's: normal cells per stage and width (default: 4@1056, Mobile)")
    parser.add_argument("--cells", type=int, default=40,
                        help="random cells of the space whose parts are timed, besides the published ones (default: 40)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random cells (default: 0)")
    parser.add_argument("--network", default="classifier",
                        help="what is timed: classifier (the NASNet), or detector:CONFIG, the Faster R-CNN FPN of a "
                             "*_fpn_frcnn config around the cell (backbone cells, FPN, RPN and ROI heads), e.g. "
                             "detector:nasnet_a_mobile_fpn_frcnn.yaml (default: classifier)")
    parser.add_argument("--predict", nargs="*", default=None, metavar="GENOTYPE",
                        help="published names or genotype.json files: print their predicted latency from the table")
    return parser


def main(argv=None):
    args = argument_parser().parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device on this machine; use --device cpu")
    if args.size[0] < 32 or args.size[1] < 32 or args.cells < 0:
        raise UserError(f"--size {args.size[0]} {args.size[1]} --cells {args.cells}: sizes need at least 32 px and "
                        "cells at least 0")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: give at least 1 (or leave it out for torch's default)")
    if args.threads:
        torch.set_num_threads(args.threads)
    from .. import genotypes
    from ..search import latency

    latency.cells_and_filters(args.arch)  # a bad N@F is one line before anything is timed
    latency.load_network(args.network)
    if args.predict is None:
        # one writer per table: two runs into one --out would time each part twice, sharing the CPU
        lock = FolderLock.for_file(args.out, "latency-table").acquire(UserError)
        try:
            table = latency.build_table(args.out, args.arch, tuple(args.size), args.device, cells=args.cells,
                                        seed=args.seed, network=args.network)
        finally:
            lock.release()
        print(f"{args.out}: {len(table.entries)} parts timed on {table.header['device_name']} "
              f"({table.header['threads']} threads, torch {table.header['torch']})")
        return table
    table = latency.LatencyTable(args.out, args.device, tuple(args.size), 1, args.arch, network=args.network)
    results = {}
    for name in args.predict:
        results[name] = latency.predict(table, genotypes.get(name), args.arch, network=args.network)
        print(f"{name}: {results[name]:.2f} ms predicted at {args.arch}, {args.size[0]}x{args.size[1]}")
    return results


if __name__ == "__main__":
    cli.run(main)
