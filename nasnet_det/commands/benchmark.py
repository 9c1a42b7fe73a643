"""Speed and memory against the reference implementations, measured in the same run.

    python tools/benchmark.py backbone [--batch 2 --size 331 --device cpu --dtype fp32 --channels-last]
    python tools/benchmark.py detector [--batch 2 --size 800 --width 1216 --device cuda --dtype bf16]
    python tools/benchmark.py pretrain [--batch 32 --size 224]
    python tools/benchmark.py search [--budget 10 --workers 2]
    python tools/benchmark.py inference [--size 320 --width 480]   # eager vs TorchScript vs onnxruntime
    python tools/benchmark.py kernels [--iters 20]   # the fast CPU training paths vs PyTorch's kernels
    python tools/benchmark.py all --out DIR [--device cpu --quick]  # everything, one report (make bench-gpu)
    python tools/benchmark.py oneshot [--cells 16 --scored 200 --supernet-epochs 20 --out DIR]  # vs per-child
    python tools/benchmark.py oneshot-detection [--seeds 0 1 --iters 600]  # detection vs classification reward
    python tools/benchmark.py ground-truth [--out runs/ground_truth --cells 150 --workers 2]  # the ranking truth
    python tools/benchmark.py ranking [--out runs/ranking]  # every ranking method against the ground truth
"""
import os

import torch

from .. import cli
from ..errors import UserError
from ..registry import Registry

# section name -> a Section class (its options and its run); a plug-in adds one with @SECTIONS.register("name")
SECTIONS = Registry("benchmark section", UserError)


class Section:
    """One comparison of ``nasnet-det benchmark``: its options, and what it runs."""

    def add_arguments(self, p) -> None:
        pass

    def run(self, args, parser):
        raise NotImplementedError


def _speed_options(p, size: int, batch: int) -> None:
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--size", type=int, default=size, help="image height (and width unless --width)")
    p.add_argument("--width", type=int)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="autocast dtype (fp32: no autocast)")
    p.add_argument("--mode", choices=["forward", "train", "both"], default="both",
                   help="forward (eval, no grad), train (forward+backward) or both")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-memory", action="store_true", help="skip the peak memory measurement")
    p.add_argument("--json", help="also write the results to this file")


def _bench_config(args):
    from ..benchmarks import BenchConfig

    return BenchConfig(batch=args.batch, size=args.size, width=args.width, device=args.device, dtype=args.dtype,
                       channels_last=getattr(args, "channels_last", False), iters=args.iters, warmup=args.warmup,
                       modes=("forward", "train") if args.mode == "both" else (args.mode,),
                       memory=not args.no_memory, compile=getattr(args, "compile", False))


class _NetworkSpeed(Section):
    """A network's speed against a port's: the speed options at this size and batch, channels_last, compile."""

    size, batch = 224, 2

    def add_arguments(self, p):
        _speed_options(p, self.size, self.batch)
        p.add_argument("--channels-last", action="store_true")
        p.add_argument("--compile", action="store_true", help="torch.compile both models")


@SECTIONS.register("backbone", help="our NASNet-A Large vs timm's nasnetalarge")
class Backbone(_NetworkSpeed):
    size, batch = 331, 2

    def run(self, args, parser):
        from ..benchmarks import benchmark_backbone

        benchmark_backbone(_bench_config(args), json_path=args.json)


@SECTIONS.register("detector", help="Faster R-CNN: ours (FPN), the timm adapter, R50-FPN")
class Detector(Section):
    def add_arguments(self, p):
        _speed_options(p, 800, 2)

    def run(self, args, parser):
        from ..benchmarks.detector import benchmark_detector

        benchmark_detector(_bench_config(args), json_path=args.json)


@SECTIONS.register("pretrain", help="the pretraining loop's step: our NASNet-A Mobile vs pretrainedmodels'")
class Pretrain(_NetworkSpeed):
    size, batch = 224, 32

    def run(self, args, parser):
        from ..benchmarks import benchmark_pretrain

        benchmark_pretrain(_bench_config(args), json_path=args.json)


@SECTIONS.register("all", help="every comparison in one run: DIR/results-<device>.json and .md")
class All(Section):
    def add_arguments(self, p):
        p.add_argument("--out", required=True, metavar="DIR")
        p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
        p.add_argument("--quick", action="store_true", help="tiny sizes: checks the command, measures nothing")
        p.add_argument("--workers", type=int, default=max(2, min(8, os.cpu_count() or 2)), help="search workers")

    def run(self, args, parser):
        from ..benchmarks.all import benchmark_all

        benchmark_all(args.out, args.device, args.quick, args.workers)


@SECTIONS.register("driver", help="what one search driver sustains: proposals/s and trial-log appends/s")
class Driver(Section):
    def add_arguments(self, p):
        p.add_argument("--strategy", default="ppo")
        p.add_argument("--out", default="runs/benchmark_driver")

    def run(self, args, parser):
        from ..benchmarks.search import driver_capacity

        driver_capacity(args.strategy, folder=args.out)


@SECTIONS.register("profile", help="torch.profiler's top ops of one detector iteration and one pretraining step")
class Profile(Section):
    def add_arguments(self, p):
        p.add_argument("--rows", type=int, default=10)

    def run(self, args, parser):
        from ..benchmarks.profile import profile_steps

        profile_steps(args.rows)


@SECTIONS.register("inference", help="the detector eager vs TorchScript vs onnxruntime; backbones vs the ports")
class Inference(Section):
    def add_arguments(self, p):
        p.add_argument("--size", type=int, default=320)
        p.add_argument("--width", type=int, default=480)
        p.add_argument("--iters", type=int, default=5)
        p.add_argument("--warmup", type=int, default=2)
        p.add_argument("--json", help="also write the results to this file")

    def run(self, args, parser):
        from ..benchmarks.inference import benchmark_inference

        benchmark_inference(args.size, args.width, args.iters, args.warmup, json_path=args.json)


@SECTIONS.register("kernels", help="the fast CPU training paths vs PyTorch's kernels: op by op, then NASNet-A "
                                   "Large's train step with them off and on")
class Kernels(Section):
    def add_arguments(self, p):
        p.add_argument("--iters", type=int, default=20)
        p.add_argument("--model-iters", type=int, default=5, help="train steps of the network (0: skip it)")
        p.add_argument("--quick", action="store_true", help="tiny sizes: checks the command, measures nothing")
        p.add_argument("--json", help="also write the results to this file")

    def run(self, args, parser):
        from ..benchmarks.kernels import benchmark_kernels
        from ..io import write_json

        results = benchmark_kernels(args.iters, args.model_iters, args.quick)
        if args.json:
            write_json(args.json, results)


@SECTIONS.register("search", help="children/s with 1 and K local workers, and with Ray")
class Search(Section):
    def add_arguments(self, p):
        p.add_argument("--budget", type=int, default=10)
        p.add_argument("--workers", type=int, default=2)
        p.add_argument("--out", default="runs/benchmark_search")

    def run(self, args, parser):
        from ..benchmarks import benchmark_search

        benchmark_search(args.budget, args.workers, out=args.out)


@SECTIONS.register("oneshot", help="one-shot vs per-child search: Kendall tau, cost per cell, equal-time quality")
class OneShot(Section):
    def add_arguments(self, p):
        p.add_argument("--cells", type=int, default=16, help="random cells trained stand-alone (rank fidelity)")
        p.add_argument("--scored", type=int, default=200, help="cells the one-shot search scores")
        p.add_argument("--supernet-epochs", type=int, default=20)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--share-inputs", action="store_true", help="the supernet's --oneshot-share-inputs")
        p.add_argument("--tau-every", type=int, help="also measure Kendall tau every N supernet epochs")
        p.add_argument("--out", default="runs/benchmark_oneshot")
        p.add_argument("--quick", action="store_true", help="tiny sizes: checks the command, measures nothing")

    def run(self, args, parser):
        from ..benchmarks.oneshot import benchmark_oneshot
        from ..search.child import ChildConfig

        if args.quick:
            benchmark_oneshot(3, 4, 1, ChildConfig(epochs=1, max_train_batches=2), args.seed, args.out, progress=False)
        else:
            benchmark_oneshot(args.cells, args.scored, args.supernet_epochs, ChildConfig(), args.seed, args.out,
                              share_inputs=args.share_inputs, tau_every=args.tau_every)


@SECTIONS.register("oneshot-detection", help="shapes AP50 of the cells found with the detection reward, the "
                                             "classification reward, and of NASNet-A")
class OneShotDetection(Section):
    def add_arguments(self, p):
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
        p.add_argument("--budget", type=int, default=24, help="cells each one-shot search scores")
        p.add_argument("--supernet-epochs", type=int, default=4)
        p.add_argument("--iters", type=int, default=600, help="detector training iterations per cell and seed")
        p.add_argument("--out", default="runs/benchmark_oneshot_detection")
        p.add_argument("--quick", action="store_true", help="tiny sizes: checks the command, measures nothing")

    def run(self, args, parser):
        from ..benchmarks.oneshot_detection import benchmark_oneshot_detection

        benchmark_oneshot_detection(args.out, args.seeds, args.budget, args.supernet_epochs, args.iters, args.quick)


@SECTIONS.register("ground-truth", help="train the ranking ground truth's cells stand-alone with 3 seeds "
                                        "(resumable: rerun the same command)")
class GroundTruth(Section):
    def add_arguments(self, p):
        p.add_argument("--out", default="runs/ground_truth", help="run folder; OUT/cells.jsonl is the result")
        p.add_argument("--cells", type=int, default=150, help="cells in all (published, mutations, random)")
        p.add_argument("--mutations", type=int, default=15, help="mutants of NASNet-A among them")
        p.add_argument("--seed", type=int, default=0, help="draws the mutations and random cells")
        p.add_argument("--workers", type=int, default=2, help="parallel trainings, one thread each")

    def run(self, args, parser):
        from ..benchmarks.truth import generate

        if min(args.cells, args.workers) < 1 or not 0 <= args.mutations <= args.cells - 3:
            parser.error("--cells and --workers must be positive, --mutations in [0, cells - 3]")
        records = generate(args.out, args.cells, args.mutations, args.seed, workers=args.workers)
        print(f"{len(records)} cells: {os.path.join(args.out, 'cells.jsonl')}")


@SECTIONS.register("latency", help="the latency table's sum of parts against measured end-to-end latency "
                                   "(published + random cells): mean/max error, Kendall tau, a held-out linear correction")
class Latency(Section):
    def add_arguments(self, p):
        p.add_argument("--out", default="runs/latency")
        p.add_argument("--arch", default="4@1056", help="N@F read as NASNet-A's (default: 4@1056)")
        p.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
        p.add_argument("--cells", type=int, default=20, help="random cells besides the published ones")
        p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
        p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--repeats", type=int, default=21, help="timed runs per part and per network (median)")
        p.add_argument("--network", default="classifier",
                       help="classifier, or detector:CONFIG (a *_fpn_frcnn config's Faster R-CNN FPN around each cell)")

    def run(self, args, parser):
        from ..benchmarks.latency import benchmark_latency

        if args.threads:
            torch.set_num_threads(args.threads)
        return benchmark_latency(args.out, args.arch, tuple(args.size), args.cells, args.device, args.seed,
                                 args.repeats, network=args.network)


@SECTIONS.register("transfer", help="every ranking method against public CIFAR-10 accuracies (LaMCTS, "
                                    "NAS-Bench-301): tau, rho, top-10%%, regret, cost, test-retest")
class Transfer(Section):
    def add_arguments(self, p):
        p.add_argument("--lamcts", metavar="PATH", help="LaMCTS cells with their CIFAR-10 accuracy, as genotype JSONL "
                                                        "(docs/search.md)")
        p.add_argument("--nb301", metavar="PATH", help="NASLib's zc_nasbench301.json")
        p.add_argument("--out", default="runs/transfer")
        p.add_argument("--sample", type=int, default=200, help="cells per truth, spread over its accuracy range")
        p.add_argument("--parts", nargs="+", default=["cheap", "ladder"], choices=["cheap", "ladder", "table", "pick"])
        p.add_argument("--methods", nargs="+", default=["params", "flops", "prior", "synflow", "naswot",
                                                        "jacob_cov", "snip", "grad_norm"], help="the cheap methods")
        p.add_argument("--fidelities", nargs="+", default=["nd12-F8-e2", "nd12-F16-e2", "rot16-F8-e3", "d16-F8-e2",
                                                           "nd12-F8-e1"], help="per-child fidelities (LADDER)")
        p.add_argument("--ladder-cells", type=int, help="per-child: the first N cells of the sample only")
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
        p.add_argument("--pool-cells", type=int, default=600,
                       help="pick: the LaMCTS cells scored with params, prior and grad_norm (pools of 500 come from them)")
        p.add_argument("--fit-prior", metavar="NB301.json", help="refit the prior method's shipped coefficients")

    def run(self, args, parser):
        from ..benchmarks.transfer import CHEAP, LADDER, benchmark_transfer, fit_prior

        if args.fit_prior:
            model = fit_prior(args.fit_prior)
            print(f"prior fitted to {model['cells']} cells of {args.fit_prior}: "
                  f"{dict(zip(model['features'], model['weights']))}")
            return
        truths = {k: v for k, v in (("lamcts", args.lamcts), ("nb301", args.nb301)) if v}
        if not truths:
            raise UserError("transfer needs a ground truth: --lamcts PATH and/or --nb301 PATH (docs/search.md, "
                            "'Ranking against real accuracies')")
        for f in args.fidelities:
            if f not in LADDER:
                raise UserError(f"unknown fidelity {f!r}; use one of {', '.join(LADDER)}")
        for m in args.methods:
            if m not in CHEAP:
                raise UserError(f"unknown cheap method {m!r}; use one of {', '.join(CHEAP)}")
        if args.sample < 6 or (args.ladder_cells is not None and args.ladder_cells < 6):
            raise UserError("--sample and --ladder-cells must be at least 6")
        if set(args.parts) - {"pick"}:
            benchmark_transfer(args.out, truths, args.sample, args.parts, args.fidelities, args.ladder_cells,
                               tuple(args.seeds), methods=args.methods)
        if "pick" in args.parts:  # the equal-time pick on a pool of LaMCTS cells (every dev cell scored)
            from ..benchmarks.transfer import benchmark_pick

            if not args.lamcts:
                raise UserError("--parts pick needs --lamcts PATH (its pool is drawn from every cell of that file)")
            benchmark_pick(args.out, args.lamcts, pool_cells=args.pool_cells)


@SECTIONS.register("strategies", help="children each strategy needs on a surrogate of LaMCTS accuracies (best "
                                      "after k, children to the top 1%%/0.1%%, asks/s; resumable)")
class Strategies(Section):
    def add_arguments(self, p):
        p.add_argument("--lamcts", metavar="PATH", required=True,
                       help="LaMCTS cells with their CIFAR-10 accuracy, as genotype JSONL (docs/search.md)")
        p.add_argument("--out", default="runs/strategies")
        p.add_argument("--strategies", nargs="+", metavar="NAME",
                       default=["random", "evolution", "ppo", "tpe", "predictor-evolution", "gp"])
        p.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 per strategy")
        p.add_argument("--budget", action="append", default=[], metavar="STRATEGY=N",
                       help="children per search (default: 1000; tpe and predictor-evolution 500, gp 100)")
        p.add_argument("--space-sample", type=int, default=100_000,
                       help="uniform children behind the top-1%%/0.1%% thresholds")
        p.add_argument("--parts", nargs="+", default=["runs", "table"], choices=["runs", "table", "confirm"],
                       help="confirm: --confirm-strategies in a real search (the default reward), 3 seeds, with "
                            "CPU-seconds")
        p.add_argument("--confirm-strategies", nargs="+", metavar="NAME",
                       default=["evolution", "predictor-evolution", "ppo"])

    def run(self, args, parser):
        from ..benchmarks.strategies import benchmark_strategies
        from ..search.strategies import STRATEGIES, public_strategies

        unknown = [n for n in args.strategies + args.confirm_strategies if n not in public_strategies()]
        if unknown:
            raise UserError(STRATEGIES.unknown(unknown[0]))
        budgets = {}
        for item in args.budget:
            name, _, value = item.partition("=")
            if name not in public_strategies() or not value.isdigit() or int(value) < 10:
                raise UserError(f"--budget {item!r}: expected STRATEGY=N with a known strategy and N >= 10")
            budgets[name] = int(value)
        if args.seeds < 2 or args.space_sample < 1000:
            raise UserError("--seeds must be at least 2 (a spread) and --space-sample at least 1000")
        return benchmark_strategies(args.lamcts, args.out, args.strategies, args.seeds, budgets, args.space_sample,
                                    args.parts, confirm=args.confirm_strategies)


@SECTIONS.register("ranking", help="every ranking method against the ground truth: tau, rho, top-10%%, regret, "
                                   "seconds per cell, equal-time pick (resumable)")
class Ranking(Section):
    def add_arguments(self, p):
        p.add_argument("--out", default="runs/ranking")
        p.add_argument("--truth", help="a ground truth cells.jsonl (default: the shipped one)")
        p.add_argument("--parts", nargs="+", default=["cheap", "per-child", "oneshot"],
                       choices=["cheap", "per-child", "oneshot", "ablation"])
        p.add_argument("--ablation-epochs", type=int, default=10, help="supernet epochs of each ablation")
        p.add_argument("--stride", type=int, default=5, help="per-child budgets score every N-th cell")
        p.add_argument("--supernet-epochs", type=int, default=45)
        p.add_argument("--wall", type=float, default=600.0, help="seconds of the equal-time search comparison")
        p.add_argument("--variants", nargs="+", metavar="RECIPE/SAMPLING",
                       help="supernet variants (default: none/uniform all/uniform all/fair); RECIPE is all, none "
                            "or a +-joined list of supernet.RECIPE parts, SAMPLING uniform or fair")
        p.add_argument("--budgets", nargs="+", metavar="EPOCHS:PX", help="per-child budgets (default: 1:12 2:12 1:8)")
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="per-child seeds")
        p.add_argument("--quick", action="store_true", help="tiny sizes: checks the command, measures nothing")

    def run(self, args, parser):
        from ..benchmarks.ranking import BUDGETS, VARIANTS, benchmark_ranking
        from ..search.config import SAMPLING
        from ..search.supernet import parse_recipe

        if args.stride < 1 or args.supernet_epochs < 1 or not args.wall > 0:
            parser.error("--stride and --supernet-epochs must be positive integers and --wall positive")
        variants = VARIANTS
        if args.variants:
            variants = tuple(tuple(v.split("/", 1)) for v in args.variants)
            for v in variants:
                if len(v) != 2 or v[1] not in SAMPLING:
                    parser.error(f"--variants: expected RECIPE/SAMPLING with SAMPLING in {SAMPLING}, got {'/'.join(v)!r}")
                parse_recipe(v[0].replace("+", ","))
            variants = tuple((r.replace("+", ","), s) for r, s in variants)
        budgets = BUDGETS
        if args.budgets:
            try:
                budgets = tuple(tuple(int(v) for v in b.split(":")) for b in args.budgets)
                assert all(len(b) == 2 and min(b) >= 1 for b in budgets)
            except (ValueError, AssertionError):
                parser.error(f"--budgets: expected EPOCHS:PX pairs of positive integers, got {' '.join(args.budgets)}")
        benchmark_ranking(args.out, args.truth, args.stride, args.supernet_epochs, budgets=budgets, variants=variants,
                          wall=args.wall, parts=args.parts, quick=args.quick, seeds=args.seeds,
                          ablation_epochs=args.ablation_epochs)


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    for name in SECTIONS.names():
        SECTIONS.get(name)().add_arguments(sub.add_parser(name, help=SECTIONS.help(name)))
    args = parser.parse_args(argv)
    result = SECTIONS.get(args.what)().run(args, parser)
    return result if args.what in ("latency", "strategies") else None


if __name__ == "__main__":
    cli.run(main)
