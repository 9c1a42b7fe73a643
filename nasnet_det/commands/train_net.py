"""Train or evaluate a NASNet Faster R-CNN with Detectron2.

    python tools/train_net.py --config nasnet_a_large_frcnn.yaml --num-gpus 8
    python tools/train_net.py --config nasnet_a_large_frcnn.yaml --eval-only MODEL.WEIGHTS model.pth
    python tools/train_net.py --config-file path/to.yaml --resume OUTPUT_DIR runs/x SOLVER.MAX_ITER 1000
"""
import os

import torch
import torch.multiprocessing as mp
from detectron2.engine import launch

from .. import cli
from ..detection.train import argument_parser
from ..detection.train import main as train
from ..errors import UserError


def _worker(args):
    # each process prints its own one-line error; the parent then only reports the exit
    cli.run(lambda _: train(args))


def main(argv=None):
    args = argument_parser().parse_args(argv)
    if args.num_gpus * args.num_machines <= 1:
        return train(args)
    if not torch.cuda.is_available():
        # several CPU processes: share the cores instead of each spinning up a thread per core
        # (2 processes x 2 threads on 2 cores ran 36x slower per iteration than 1 thread each)
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.num_gpus)))
    dist_url = args.dist_url
    if args.num_machines == 1 and dist_url == argument_parser().get_default("dist_url"):
        dist_url = "auto"  # a free port: Detectron2's default is one fixed port per user, busy if two runs share a machine
    try:
        launch(_worker, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=dist_url, args=(args,))
    except mp.ProcessExitedException as e:
        raise UserError(f"training process {e.error_index} stopped with exit status {e.exit_code} "
                        "(its error is printed above)") from None


if __name__ == "__main__":
    cli.run(main)
