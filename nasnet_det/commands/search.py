"""Search a NASNet cell; writes OUT/genotype.json (usable as MODEL.NASNET.GENOTYPE).

    python tools/search.py                                   # ppo, the default reward (prior), 200 children, 2 workers
    python tools/search.py --method per-child --dataset digits --child-img-size 16   # train each child (20 by default)
    python tools/search.py --budget 2000 --promote method=per-child,dataset=digits,img_size=16 --out runs/sh
                                                             # successive halving: the best third re-scored by training
    python tools/search.py --strategy evolution --budget 100 --workers 2 --out runs/evo
    python tools/search.py --resume --out runs/evo           # after a crash or kill -9
    python tools/search.py --resume --out runs/evo --budget 200   # continue to a larger budget
    # the paper's scale, on a Ray cluster of GPU machines (ray start --head / --address=...):
    python tools/search.py --strategy ppo --method per-child --dataset cifar10:/data/cifar-10-batches-py --budget 20000 \\
        --workers 450 --backend ray --ray-address auto --gpus-per-child 1 --child-epochs 20 \\
        --child-img-size 32 --child-num-conv-filters 32 --out runs/paper

One-shot (shared weights; nasnet_det.search.oneshot):

    python tools/search.py --method oneshot --strategy evolution --budget 200 --oneshot-epochs 20   # SPOS
    python tools/search.py --method oneshot --strategy ppo --budget 400                             # ENAS
    python tools/search.py --method oneshot --task detection --dataset shapes --budget 50           # DetNAS
    torchrun --standalone --nproc_per_node 8 tools/search.py --method oneshot ...   # data-parallel supernet

With --resume, the settings stored in OUT/search.json are used; options given on the command line
may change the budget and how the work runs (workers, backend), and any other difference is refused.

Outputs in OUT:
- trials.jsonl: every attempt;
- state.pt: strategy state;
- search.json: the settings;
- rung1/, rung2/, ..., promotion.json (--promote): each rung's search and who was promoted;
- genotype.json: the best cell;
- report.md: the top-k table;
- search_curve.png: rewards and running best;
- supernet.pt (--method oneshot): the supernet's weights, optimizer and place in its schedule.
"""
import argparse
import dataclasses
import json
import logging
import os

from .. import cli
from ..search.child import ChildConfig
from ..search.oneshot import OneShotConfig
from ..search.config import search_methods
from ..search.runner import BACKENDS, TASKS, SearchConfig, SearchError, run_search
from ..search.strategies import public_strategies
from ..search.evaluators import EVALUATORS

NESTED = ("ops", "combines", "strategy_options", "child", "oneshot", "promote", "plugins")
CONFIG_FIELDS = [f.name for f in dataclasses.fields(SearchConfig) if f.name not in NESTED]


def parser():
    p = cli.ArgumentParser(description=__doc__)
    cli.add_dataclass_options(p, SearchConfig, skip=NESTED, choices={"strategy": public_strategies(), "backend": BACKENDS,
                                                                    "method": search_methods(), "task": TASKS.names()})
    p.add_argument("--ops", nargs="+", help="op vocabulary (default: the paper's 13)")
    p.add_argument("--combines", nargs="+", default=["add"], help="combine vocabulary (default: add)")
    p.add_argument("--strategy-option", action="append", default=[], metavar="KEY=VALUE",
                   help="e.g. lr=0.003, population_size=50, sample_size=10 (JSON values)")
    p.add_argument("--dataset", default=None,
                   help="classification: noisy-digits (default), digits, cifar10:PATH or imagefolder:PATH; detection: "
                        "shapes (default), voc:ROOT or coco:DIR:JSON")
    cli.add_dataclass_options(p, ChildConfig, prefix="child-", skip=("dataset",))
    cli.add_dataclass_options(p, OneShotConfig, prefix="oneshot-")
    p.add_argument("--promote", nargs="+", metavar="RUNG", help="successive halving: after the search, each RUNG "
                   "(KEY=VALUE[,KEY=VALUE], over method and the child's fields, e.g. method=per-child or epochs=4) "
                   "re-scores the best --promote-keep of the rung before it")
    p.add_argument("--resume", action="store_true", help="continue the search in --out with its stored settings")
    return p


def given_options(argv) -> set:
    """The options the command line names (not left at their defaults)."""
    p = parser()
    for action in p._actions:
        action.default = argparse.SUPPRESS
    return set(vars(p.parse_args(argv)))


def _strategy_options(items) -> dict:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not (key and sep):
                raise ValueError
            options[key] = json.loads(value)
        except ValueError:
            raise SearchError(f"--strategy-option {item!r}: expected KEY=VALUE with a JSON value "
                              "(e.g. lr=0.003)") from None
    return options


def config_from_args(args, given=None) -> SearchConfig:
    """The search's settings: the command line's, or with ``--resume`` the stored ones with the
    options named on the command line (``given``) on top."""
    a = vars(args)
    stored_path = os.path.join(a["out"], "search.json")
    if a["resume"] and os.path.isfile(stored_path):
        try:
            with open(stored_path) as f:
                raw = json.load(f)
            untrusted = [m for m in raw.get("plugins", ()) if m not in a["plugin"]]
        except (OSError, ValueError, AttributeError, TypeError) as e:
            raise SearchError(f"cannot read the stored settings {stored_path}: {type(e).__name__}: {e}") from None
        if untrusted:  # importing a module named by a run folder handed to us would run its code
            raise SearchError(f"{stored_path} names the plug-in(s) {', '.join(map(str, untrusted))}: resume with "
                              f"{' '.join('--plugin ' + str(m) for m in untrusted)} to trust them")
        try:
            stored = SearchConfig.from_dict(raw)
        except (ValueError, KeyError, TypeError) as e:
            raise SearchError(f"cannot read the stored settings {stored_path}: {type(e).__name__}: {e}") from None
        given = set(a) if given is None else given
        if stored.evaluator not in EVALUATORS and "evaluator" not in given:
            # importing a module named by a run folder handed to us would run its code
            raise SearchError(f"{stored_path} names the evaluator {stored.evaluator!r}, which is not one of ours: "
                              f"resume with --evaluator {stored.evaluator} to trust that module")
        fields = {k: a[k] for k in CONFIG_FIELDS if k in given}
        child = {f.name: a["child_" + f.name] for f in dataclasses.fields(ChildConfig)
                 if "child_" + f.name in given}
        if "dataset" in given:
            child["dataset"] = a["dataset"]
        oneshot = {f.name: a["oneshot_" + f.name] for f in dataclasses.fields(OneShotConfig)
                   if "oneshot_" + f.name in given}
        if oneshot:
            fields["oneshot"] = dataclasses.replace(stored.oneshot, **oneshot)
        if "ops" in given:
            fields["ops"] = tuple(a["ops"])
        if "combines" in given:
            fields["combines"] = tuple(a["combines"])
        if "promote" in given:
            fields["promote"] = tuple(a["promote"])
        if "strategy_option" in given:
            fields["strategy_options"] = _strategy_options(a["strategy_option"])
        return dataclasses.replace(stored, child=dataclasses.replace(stored.child, **child), **fields)
    dataset = a["dataset"] or ("shapes" if a["task"] == "detection" else ChildConfig.dataset)
    child = {f.name: a["child_" + f.name] for f in dataclasses.fields(ChildConfig) if f.name != "dataset"}
    if a["task"] != "classification":  # the task's child defaults, where the command line is silent
        from ..search.tasks import load_task

        given = set(a) if given is None else given
        child.update({k: v for k, v in load_task(a["task"]).CHILD_DEFAULTS.items() if "child_" + k not in given})
    child = ChildConfig(dataset=dataset, **child)
    oneshot = OneShotConfig(**{f.name: a["oneshot_" + f.name] for f in dataclasses.fields(OneShotConfig)})
    return SearchConfig(**{k: a[k] for k in CONFIG_FIELDS}, ops=tuple(a["ops"] or SearchConfig.ops),
                        combines=tuple(a["combines"]), strategy_options=_strategy_options(a["strategy_option"]),
                        plugins=tuple(a["plugin"]),
                        promote=tuple(a["promote"] or ()),
                        child=child, oneshot=oneshot)


def _run_distributed(cfg: SearchConfig, resume: bool):
    """Under torchrun: rank 0 runs the search, every process trains the supernet's rounds."""
    import torch
    import torch.distributed as dist

    from ..search.oneshot import follow_rounds
    from ..search.runner import SearchRunner, build_supernet_trainer
    from ..search.space import SearchSpace

    if cfg.method != "oneshot" or cfg.evaluator != "method":
        raise SearchError("several processes (torchrun) train a one-shot supernet: use --method oneshot, or run "
                          "the per-child search as one process with --workers")
    from ..procs import die_with_launcher

    die_with_launcher()  # a kill -9 of torchrun ends this rank too
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        if dist.get_rank() == 0:
            runner = SearchRunner(cfg, resume)
            dist.barrier()  # the run folder is checked and ready
            return runner.run()
        dist.barrier()
        follow_rounds(build_supernet_trainer(cfg, SearchSpace(cfg.num_blocks, cfg.ops, cfg.combines)))
        return None
    finally:
        dist.destroy_process_group()


def main(argv=None):
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = config_from_args(args, given_options(argv))
    if cfg.task == "detection":
        logging.getLogger("detectron2").setLevel(logging.WARNING)  # per-child evaluation logs
        logging.getLogger("fvcore").setLevel(logging.WARNING)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: the supernet trains data-parallel
        done = _run_distributed(cfg, args.resume)
        if done is None:
            return
    else:
        done = run_search(cfg, resume=args.resume)
    best = max((t for t in done if t["status"] == "ok"), key=lambda t: t["reward"])
    print(f"{len(done)} children; best reward {best['reward']:.4f} (child {best['id']}); "
          f"genotype: {cfg.out}/genotype.json, report: {cfg.out}/report.md")


if __name__ == "__main__":
    cli.run(main)
