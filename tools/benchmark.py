#!/usr/bin/env python
"""Speed and memory against the reference implementations, measured in the same run.

    python tools/benchmark.py backbone [--batch 2 --size 331 --device cpu --dtype fp32 --channels-last]
"""
import argparse
import sys

import torch

from nasnet_det.benchmark import BenchConfig, benchmark_backbone


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    backbone = sub.add_parser("backbone", help="our NASNet-A Large vs timm's nasnetalarge")
    backbone.add_argument("--batch", type=int, default=2)
    backbone.add_argument("--size", type=int, default=331)
    backbone.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    backbone.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32",
                          help="autocast dtype (fp32: no autocast)")
    backbone.add_argument("--channels-last", action="store_true")
    backbone.add_argument("--mode", choices=["forward", "train", "both"], default="both",
                          help="forward (eval, no grad), train (forward+backward) or both")
    backbone.add_argument("--iters", type=int, default=5)
    backbone.add_argument("--warmup", type=int, default=2)
    backbone.add_argument("--compile", action="store_true", help="torch.compile both models")
    backbone.add_argument("--no-memory", action="store_true", help="skip the peak memory measurement")
    backbone.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    cfg = BenchConfig(batch=args.batch, size=args.size, device=args.device, dtype=args.dtype,
                      channels_last=args.channels_last, iters=args.iters, warmup=args.warmup,
                      modes=("forward", "train") if args.mode == "both" else (args.mode,),
                      memory=not args.no_memory, compile=args.compile)
    benchmark_backbone(cfg, json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
