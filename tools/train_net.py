#!/usr/bin/env python
"""Train or evaluate a NASNet Faster R-CNN with Detectron2.

    python tools/train_net.py --config nasnet_a_large_frcnn.yaml --num-gpus 8
    python tools/train_net.py --config nasnet_a_large_frcnn.yaml --eval-only MODEL.WEIGHTS model.pth
    python tools/train_net.py --config-file path/to.yaml --resume OUTPUT_DIR runs/x SOLVER.MAX_ITER 1000
"""
import sys

from detectron2.engine import launch

from nasnet_det.detection.train import argument_parser, main
from nasnet_det.errors import USER_ERRORS


def run(args):
    try:
        return main(args)
    except USER_ERRORS as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    args = argument_parser().parse_args()
    launch(run, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
