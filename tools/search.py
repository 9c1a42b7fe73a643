#!/usr/bin/env python
"""Search a NASNet cell; writes OUT/genotype.json (usable as MODEL.NASNET.GENOTYPE).

    python tools/search.py                                   # ppo on digits, 20 children, 2 local workers
    python tools/search.py --strategy evolution --budget 100 --workers 2 --out runs/evo
    python tools/search.py --resume --out runs/evo           # after a crash or kill -9
    # the paper's scale, on a Ray cluster of GPU machines (ray start --head / --address=...):
    python tools/search.py --strategy ppo --dataset cifar10:/data/cifar-10-batches-py --budget 20000 \\
        --workers 450 --backend ray --ray-address auto --gpus-per-child 1 --child-epochs 20 \\
        --child-img-size 32 --child-num-conv-filters 32 --out runs/paper

Outputs in OUT:
- trials.jsonl: every attempt;
- state.pt: strategy state;
- genotype.json: the best cell;
- report.md: the top-k table;
- search_curve.png: rewards and running best.
"""
import argparse
import dataclasses
import json
import logging
import sys
import typing

from nasnet_det.errors import USER_ERRORS
from nasnet_det.search.child import ChildConfig
from nasnet_det.search.runner import SearchConfig, SearchError, run_search


def _add_fields(parser, cls, prefix="", skip=()):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = hints[f.name]
        flag = "--" + prefix + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            base = typing.get_args(kind)[0] if typing.get_origin(kind) is typing.Union else kind
            parser.add_argument(flag, type=base, default=default, help=f"default: {default}")


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_fields(p, SearchConfig, skip=("ops", "combines", "strategy_options", "child"))
    p.add_argument("--ops", nargs="+", help="op vocabulary (default: the paper's 13)")
    p.add_argument("--combines", nargs="+", default=["add"], help="combine vocabulary (default: add)")
    p.add_argument("--strategy-option", action="append", default=[], metavar="KEY=VALUE",
                   help="e.g. lr=0.003, population_size=50, sample_size=10 (JSON values)")
    p.add_argument("--dataset", default="digits", help="digits, cifar10:PATH or imagefolder:PATH")
    _add_fields(p, ChildConfig, prefix="child-", skip=("dataset",))
    p.add_argument("--resume", action="store_true")
    return p


def config_from_args(args) -> SearchConfig:
    a = vars(args)
    child = ChildConfig(dataset=a["dataset"], **{f.name: a["child_" + f.name] for f in dataclasses.fields(ChildConfig)
                                                  if f.name != "dataset"})
    options = {}
    for item in a["strategy_option"]:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            raise SearchError(f"--strategy-option {item!r}: the value must be JSON (a number, true, ...)") from None
    fields = {f.name: a[f.name] for f in dataclasses.fields(SearchConfig)
              if f.name not in ("ops", "combines", "strategy_options", "child")}
    return SearchConfig(**fields, ops=tuple(a["ops"] or SearchConfig.ops), combines=tuple(a["combines"]),
                        strategy_options=options, child=child)


def main(argv=None):
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        cfg = config_from_args(args)
        done = run_search(cfg, resume=args.resume)
    except (SearchError, ValueError) + USER_ERRORS as e:
        sys.exit(f"error: {e}")
    best = max((t for t in done if t["status"] == "ok"), key=lambda t: t["reward"])
    print(f"{len(done)} children; best reward {best['reward']:.4f} (child {best['id']}); "
          f"genotype: {cfg.out}/genotype.json, report: {cfg.out}/report.md")


if __name__ == "__main__":
    sys.exit(main())
