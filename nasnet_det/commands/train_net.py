"""Train or evaluate a NASNet Faster R-CNN with Detectron2.

    python tools/train_net.py --config nasnet_a_large_frcnn.yaml --num-gpus 8
    python tools/train_net.py --config nasnet_a_large_frcnn.yaml --eval-only MODEL.WEIGHTS model.pth
    python tools/train_net.py --config-file path/to.yaml --resume OUTPUT_DIR runs/x SOLVER.MAX_ITER 1000
"""
import logging
import os
import sys
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.multiprocessing as mp
from detectron2.config import CfgNode
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from .. import cli
from ..detection.datasets import register_cfg_datasets, require_files
from ..detection.checkpoint import ALLOW_PICKLE, NASNetCheckpointer
from ..detection.config import check_device, check_trainable, get_config, shipped_configs
from ..detection.evaluation import write_eval_results
from ..detection.train import Trainer
from ..errors import ConfigError, UserError
from ..io import FolderLock, log_files_give_way, write_text


def argument_parser():
    parser = cli.one_line_errors(default_argument_parser())
    parser.add_argument("--config", metavar="NAME",
                        help="a config shipped in configs/ (e.g. nasnet_a_large_frcnn.yaml) or a path")
    parser.add_argument("--dist-timeout", type=float, default=10.0, metavar="MINUTES",
                        help="with --num-machines > 1: give up when the other machines have not joined within "
                             "this many minutes (default: 10)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="load .pkl weights (unpickling runs any code the file holds: trusted files only)")
    return parser


def setup(args) -> CfgNode:
    if args.config and args.config_file:
        raise ConfigError("give --config or --config-file, not both")
    if not (args.config or args.config_file):
        raise ConfigError(f"no config: use --config NAME ({', '.join(shipped_configs())}) or --config-file PATH")
    cfg = get_config(args.config or args.config_file, args.opts, register_datasets=False)
    check_device(cfg)  # before anything is built or written
    if comm.get_rank() == 0 and cfg.OUTPUT_DIR:
        # one writer per OUTPUT_DIR, taken before anything is written there; held until the process ends
        FolderLock(cfg.OUTPUT_DIR, "detection run").acquire(ConfigError)
    # the package's own log lines (e.g. NUM_CLASSES following the training set) go where Detectron2's go
    setup_logger(cfg.OUTPUT_DIR or None, distributed_rank=comm.get_rank(), name="nasnet_det", abbrev_name="nd")
    logging.getLogger("nasnet_det").propagate = True  # Detectron2 turns it off; pytest's caplog listens at the root
    register_cfg_datasets(cfg)
    cfg.freeze()
    config_yaml = os.path.join(cfg.OUTPUT_DIR, "config.yaml") if cfg.OUTPUT_DIR else ""
    if comm.is_main_process() and os.path.isfile(config_yaml):
        with open(config_yaml, encoding="utf-8") as f:
            _RUN_CONFIGS[config_yaml] = f.read()  # the run's own, put back if this invocation fails or only evaluates
    default_setup(cfg, args)  # logging, and OUTPUT_DIR/config.yaml so a run can be reproduced
    log_files_give_way("detectron2", "fvcore", "nasnet_det")
    return cfg


_RUN_CONFIGS: dict = {}  # OUTPUT_DIR/config.yaml -> its text before this process wrote it


@contextmanager
def keeping_run_config(cfg, eval_only: bool):
    """An ``--eval-only``, or a run that fails (another ARCH on ``--resume``), leaves OUTPUT_DIR/config.yaml
    as the training that made the folder wrote it (Detectron2's default_setup overwrites it at start);
    the evaluation's own config goes to config_eval.yaml."""
    path = os.path.join(cfg.OUTPUT_DIR, "config.yaml") if cfg.OUTPUT_DIR else ""
    previous = _RUN_CONFIGS.pop(path, None)
    ok = False
    try:
        yield
        ok = True
    finally:
        if previous is not None and (eval_only or not ok):
            if eval_only:
                write_text(os.path.join(cfg.OUTPUT_DIR, "config_eval.yaml"), cfg.dump())
            write_text(path, previous)


def _require_files(names) -> None:
    for name in names:  # before the model is built: a missing COCO is one line, not pycocotools' traceback
        require_files(name)


def train(args):
    """Train (``--resume`` to continue) or evaluate (``--eval-only``); returns the metrics."""
    if getattr(args, "allow_pickle", False):
        os.environ[ALLOW_PICKLE] = "1"  # in the environment: launch's worker processes see it too
    cfg = setup(args)
    with keeping_run_config(cfg, args.eval_only):
        if args.eval_only:
            if not cfg.MODEL.WEIGHTS and not (args.resume and
                                              os.path.isfile(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint"))):
                raise ConfigError("--eval-only needs weights to evaluate: give MODEL.WEIGHTS path/to/model_final.pth")
            _require_files(cfg.DATASETS.TEST)
            model = Trainer.build_model(cfg)
            NASNetCheckpointer(model, cfg.OUTPUT_DIR, cfg=cfg, strict=True).resume_or_load(cfg.MODEL.WEIGHTS,
                                                                                         resume=args.resume)
            results = Trainer.test(cfg, model)
        else:
            check_trainable(cfg)
            _require_files(cfg.DATASETS.TRAIN + cfg.DATASETS.TEST)
            trainer = Trainer(cfg)
            trainer.resume_or_load(resume=args.resume)
            results = trainer.train()
        write_eval_results(cfg, results)
    return results




def _worker(args):
    from ..procs import die_with_launcher

    die_with_launcher()  # a kill -9 of the launching process ends this rank too
    # each process prints its own one-line error; the parent then only reports the exit
    cli.run(lambda _: train(args))


def main(argv=None):
    args = argument_parser().parse_args(argv)
    if args.num_machines < 1 or not 0 <= args.machine_rank < args.num_machines:
        raise UserError(f"--machine-rank {args.machine_rank} of --num-machines {args.num_machines}: the rank must be "
                        f"0 to {max(0, args.num_machines - 1)}, one per machine")
    if args.num_gpus * args.num_machines <= 1:
        return train(args)
    if not torch.cuda.is_available():
        # several CPU processes: share the cores instead of each spinning up a thread per core
        # (2 processes x 2 threads on 2 cores ran 36x slower per iteration than 1 thread each)
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.num_gpus)))
    dist_url = args.dist_url
    if args.num_machines == 1 and dist_url == argument_parser().get_default("dist_url"):
        dist_url = "auto"  # a free port: Detectron2's default is one fixed port per user, busy if two runs share a machine
    if not args.dist_timeout > 0:
        raise UserError(f"--dist-timeout {args.dist_timeout}: give a positive number of minutes")
    if args.num_machines > 1:  # Detectron2 waits in silence, for 30 minutes, for machines that may never come
        others = ", ".join(str(r) for r in range(args.num_machines) if r != args.machine_rank)
        print(f"waiting up to {args.dist_timeout:g} min for the other machines at {dist_url}: run this command on each "
              f"with --machine-rank {others} and the same --dist-url", file=sys.stderr, flush=True)
    try:
        launch(_worker, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=dist_url, args=(args,), timeout=timedelta(minutes=args.dist_timeout))
    except mp.ProcessRaisedException as e:  # raised before our worker ran: the rendezvous of the machines
        text = str(e)
        if "DistStoreError" in text or "Timed out" in text:
            joined = next((line.strip() for line in text.splitlines() if "clients joined" in line), "timed out")
            raise UserError(f"--num-machines {args.num_machines}: the other machines did not join at {dist_url} within "
                            f"{args.dist_timeout:g} min ({joined}); start this command on each with its "
                            "--machine-rank and the same --dist-url, or raise --dist-timeout") from None
        raise
    except mp.ProcessExitedException as e:
        raise UserError(f"training process {e.error_index} stopped with exit status {e.exit_code} "
                        "(its error is printed above)") from None


if __name__ == "__main__":
    cli.run(main)
