"""The main job on its embedded default: search -> pretrain -> detect -> evaluate, on the CPU.

    python tools/demo.py                      # everything lands in runs/demo/
    python tools/demo.py --out runs/demo2 --search-budget 400 --detection-iters 1500 --no-raccoon
    python tools/demo.py --resume             # continue an interrupted run in runs/demo/
"""
import logging

from .. import cli
from ..demo import DemoConfig, run_demo
from ..search.config import search_methods


def main(argv=None):
    d = DemoConfig()
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=d.out)
    p.add_argument("--search-budget", type=int, default=d.search_budget)
    p.add_argument("--search-workers", type=int, default=d.search_workers)
    p.add_argument("--search-method", default=d.search_method, choices=search_methods(),
                   help="the search's reward (default: prior; per-child trains each child on noisy digits)")
    p.add_argument("--pretrain-epochs", type=int, default=d.pretrain_epochs)
    p.add_argument("--detection-iters", type=int, default=d.detection_iters)
    p.add_argument("--raccoon", default=d.raccoon, help="the raccoon photos (VOC layout); skipped if absent")
    p.add_argument("--no-raccoon", action="store_true")
    p.add_argument("--raccoon-iters", type=int, default=d.raccoon_iters)
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out (finished stages are not redone)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = DemoConfig(out=args.out, search_budget=args.search_budget, search_workers=args.search_workers,
                     search_method=args.search_method,
                     pretrain_epochs=args.pretrain_epochs, detection_iters=args.detection_iters,
                     raccoon=None if args.no_raccoon else args.raccoon, raccoon_iters=args.raccoon_iters, resume=args.resume)
    run_demo(cfg)


if __name__ == "__main__":
    cli.run(main)
