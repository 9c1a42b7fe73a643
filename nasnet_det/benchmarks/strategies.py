"""How many children each strategy needs, measured in minutes (``tools/benchmark.py strategies``).

A surrogate benchmark, as NAS-Bench-301 is for the DARTS space: a model of real accuracy that any
strategy queries in microseconds. The model is fitted, at run time, to the LaMCTS cells given with
``--lamcts`` (CIFAR-10 test accuracy after 200 epochs, trained by the LaNAS authors; CC BY-NC 4.0,
so the fitted model lives in the run folder only, never in the package or the wheel). Their space
(:data:`SPACE`): 7 blocks, 4 ops, ``add``, one cell for both roles.

- The model (:func:`fit_surrogate`): gradient-boosted trees (scikit-learn, Huber loss) on a one-hot
  encoding of a cell's inputs and ops plus :mod:`nasnet_det.search.prior`'s op-group shares. It is
  fitted on a seeded 80% of the cells; its Kendall tau on the other 20% (all, and the >= 85% band)
  is the surrogate's own held-out fidelity, reported beside every result. A child of the search
  has two cells; its surrogate reward is the mean of the model's prediction for each (the data
  has one cell for both roles, so each cell is scored as if it were both).
- The searches run through the normal runner (:func:`nasnet_det.search.runner.run_search`) with
  the evaluator :func:`surrogate_evaluator`, one local worker, so resume, the worker process and
  the trial log are exercised as in a real search; ``OUT/runs/<strategy>/seed<k>/`` are ordinary
  search folders, resumed where a run stopped.
- ``OUT/space.json``: the surrogate's top-1% and top-0.1% thresholds, from a seeded uniform sample
  of the space (``--space-sample`` children).
- ``OUT/strategies.json`` / ``.md`` / ``.png``: per strategy, the best reward after k children
  (mean and standard deviation over seeds), the children needed to reach the top 1% and 0.1%
  (mean over the seeds that reached it, and how many did within the budget), and proposals per
  second of its ask/tell (the driver's ceiling).
"""
from __future__ import annotations

import json
import os
import random
import statistics
import time
from functools import lru_cache
from typing import Dict, List, Optional, Sequence

import numpy as np

from .. import genotypes
from ..errors import UserError
from ..io import write_json, write_text
from .public import read_truth

SPACE = dict(num_blocks=7, ops=("sep_conv_3x3", "max_pool_3x3", "identity", "sep_conv_5x5"), combines=("add",))
STRATEGIES = ("random", "evolution", "ppo", "tpe", "predictor-evolution", "gp")
# children per search: a GP refits per ask (seconds at a few hundred children)
BUDGETS = {"random": 1000, "evolution": 1000, "ppo": 1000, "tpe": 500, "predictor-evolution": 500, "gp": 100}
KS = (10, 20, 50, 100, 200, 500, 1000)
ENV = "NASNET_DET_SURROGATE"  # the surrogate model's path, read by the evaluator in the search's workers


def cell_encoding(cell: genotypes.Cell) -> List[float]:
    """One-hot inputs and ops of each block slot, then the prior's op-group shares."""
    from ..search.prior import cell_features

    row = []
    for k, block in enumerate(cell.blocks):
        for slot in range(2):
            row += [float(block.ops[slot] == op) for op in SPACE["ops"]]
            row += [float(block.inputs[slot] == j) for j in range(k + 2)]
    return row + cell_features(cell)


def _kendall(a, b) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b)[0])


def fit_surrogate(lamcts_path: str, out: str, seed: int = 0, held_out: float = 0.2) -> dict:
    """Fit the model to the LaMCTS cells; write ``OUT/surrogate.json`` (trees as arrays) and return it."""
    from sklearn.ensemble import GradientBoostingRegressor

    records = read_truth(lamcts_path)
    cells = [genotypes.Genotype.from_dict(r["genotype"]).normal for r in records]
    if any(len(c.blocks) != SPACE["num_blocks"] or not set(o for b in c.blocks for o in b.ops) <= set(SPACE["ops"])
           for c in cells):
        raise UserError(f"{lamcts_path}: not the LaMCTS space (7 blocks of {', '.join(SPACE['ops'])}); "
                        "give the LaMCTS cells file (docs/search.md)")
    x = np.array([cell_encoding(c) for c in cells])
    y = np.array([r["accuracy"] for r in records], dtype=float)
    order = np.random.RandomState(seed).permutation(len(y))
    cut = int(round(len(y) * (1 - held_out)))
    fit_idx, test_idx = order[:cut], order[cut:]
    gbt = GradientBoostingRegressor(n_estimators=300, max_depth=3, learning_rate=0.05, subsample=0.8,
                                    loss="huber", random_state=seed).fit(x[fit_idx], y[fit_idx])
    trees = [{"left": t.tree_.children_left.tolist(), "right": t.tree_.children_right.tolist(),
              "feature": t.tree_.feature.tolist(), "threshold": t.tree_.threshold.tolist(),
              "value": t.tree_.value[:, 0, 0].tolist()} for t in gbt.estimators_[:, 0]]
    model = {"base": float(gbt._raw_predict_init(x[:1])[0, 0]), "learning_rate": gbt.learning_rate,
             "trees": trees, "features": x.shape[1], "space": {**SPACE, "ops": list(SPACE["ops"]), "combines": ["add"]},
             "source": f"LaMCTS (facebookresearch/LaMCTS total_trace.json, CC BY-NC 4.0): {lamcts_path}, "
                       f"{len(fit_idx)} of {len(y)} cells, seed {seed}. Not for shipping."}
    predicted = Surrogate(model).predict_rows(x[test_idx])
    truth = y[test_idx]
    band = truth >= 85.0
    model["fidelity"] = {"held_out_cells": int(len(test_idx)), "tau": _kendall(predicted, truth),
                         "tau_band85": _kendall(predicted[band], truth[band]), "band_cells": int(band.sum()),
                         "fit_cells": int(len(fit_idx))}
    write_json(os.path.join(out, "surrogate.json"), model)
    return model


class Surrogate:
    """The fitted trees, evaluated with numpy (many rows at once)."""

    def __init__(self, model: dict):
        self.model = model
        self.trees = [{k: np.asarray(v) for k, v in t.items()} for t in model["trees"]]

    def predict_rows(self, x: np.ndarray) -> np.ndarray:
        out = np.full(len(x), self.model["base"], dtype=float)
        rows = np.arange(len(x))
        for t in self.trees:
            node = np.zeros(len(x), dtype=int)
            while True:
                inner = t["left"][node] >= 0
                if not inner.any():
                    break
                go_left = x[rows, np.maximum(t["feature"][node], 0)] <= t["threshold"][node]
                node = np.where(inner, np.where(go_left, t["left"][node], t["right"][node]), node)
            out += self.model["learning_rate"] * t["value"][node]
        return out

    def __call__(self, genotype: genotypes.Genotype) -> float:
        x = np.array([cell_encoding(genotype.normal), cell_encoding(genotype.reduction)])
        return float(self.predict_rows(x).mean())


@lru_cache(maxsize=2)
def load_surrogate(path: str) -> Surrogate:
    with open(path) as f:
        return Surrogate(json.load(f))


def surrogate_evaluator(genotype_dict: dict, settings: dict) -> dict:
    """A search evaluator (``--evaluator nasnet_det.benchmarks.strategies:surrogate_evaluator``): the
    surrogate's predicted CIFAR-10 accuracy (percent) of the child; the model's path is in $NASNET_DET_SURROGATE."""
    path = os.environ.get(ENV)
    if not path:
        raise UserError(f"the surrogate evaluator reads its model from ${ENV}: set it to OUT/surrogate.json "
                        "of tools/benchmark.py strategies")
    start = time.perf_counter()
    reward = load_surrogate(path)(genotypes.Genotype.from_dict(genotype_dict))
    return {"reward": reward, "seconds": time.perf_counter() - start}


def space_thresholds(surrogate: Surrogate, count: int, seed: int = 0) -> dict:
    """The surrogate's top-1% and top-0.1% rewards, from ``count`` uniform children of the space."""
    from ..search.space import SearchSpace

    space = SearchSpace(**SPACE)
    rng = random.Random(seed)
    rewards = []
    for start in range(0, count, 5000):
        rows = []
        for _ in range(min(5000, count - start)):
            g = space.decode(space.random(rng))
            rows += [cell_encoding(g.normal), cell_encoding(g.reduction)]
        rewards.append(surrogate.predict_rows(np.array(rows)).reshape(-1, 2).mean(1))
    rewards = np.concatenate(rewards)
    return {"children": int(count), "seed": seed, "top1": float(np.quantile(rewards, 0.99)),
            "top0.1": float(np.quantile(rewards, 0.999)), "median": float(np.median(rewards)),
            "max_seen": float(rewards.max())}


def run_one(out: str, strategy: str, seed: int, budget: int) -> List[float]:
    """One search against the surrogate, in ``OUT/runs/<strategy>/seed<k>`` (resumed where it stopped);
    its rewards in the order the children were proposed."""
    from ..search.runner import SearchConfig, run_search
    from ..search.trials import TrialLog

    folder = os.path.join(out, "runs", strategy, f"seed{seed}")
    log = TrialLog(os.path.join(folder, "trials.jsonl"))
    final = log.final() if log.exists() else []
    if len(final) < budget:
        cfg = SearchConfig(strategy=strategy, seed=seed, budget=budget, method="per-child", workers=1,
                           evaluator="nasnet_det.benchmarks.strategies:surrogate_evaluator", out=folder,
                           progress=False, **{**SPACE, "ops": tuple(SPACE["ops"])})
        final = run_search(cfg, resume=os.path.exists(os.path.join(folder, "search.json")))
    return [t["reward"] for t in sorted(final, key=lambda t: t["id"])][:budget]


def _children_to(rewards: Sequence[float], threshold: float) -> Optional[int]:
    for k, r in enumerate(rewards, 1):
        if r >= threshold:
            return k
    return None


def summarise(curves: Dict[str, List[List[float]]], thresholds: dict, rates: Dict[str, float],
              fidelity: dict) -> dict:
    table = {}
    for name, runs in curves.items():
        best = [np.maximum.accumulate(r) for r in runs]
        row = {"seeds": len(runs), "budget": min(len(r) for r in runs), "best_after": {}}
        for k in KS:
            if k <= row["budget"]:
                values = [float(b[k - 1]) for b in best]
                row["best_after"][str(k)] = {"mean": statistics.mean(values),
                                             "std": statistics.stdev(values) if len(values) > 1 else 0.0}
        for level in ("top1", "top0.1"):
            hits = [_children_to(r, thresholds[level]) for r in runs]
            reached = [h for h in hits if h is not None]
            row[f"children_to_{level}"] = {
                "mean": statistics.mean(reached) if reached else None,
                "median": statistics.median(reached) if reached else None,
                "reached": len(reached), "of": len(hits),
                # a seed that never reached it counts as the budget: a lower bound on the mean
                "mean_censored": statistics.mean(h if h is not None else row["budget"] for h in hits)}
        row["proposals_per_second"] = rates.get(name)
        table[name] = row
    return {"strategies": table, "thresholds": thresholds, "surrogate_fidelity": fidelity}


def markdown(result: dict) -> str:
    t, f = result["thresholds"], result["surrogate_fidelity"]
    lines = [f"Surrogate: held-out Kendall tau {f['tau']:.3f} on {f['held_out_cells']} LaMCTS cells "
             f"({f['tau_band85']:.3f} on the {f['band_cells']} >= 85%); thresholds from {t['children']} uniform "
             f"children: top 1% >= {t['top1']:.3f}, top 0.1% >= {t['top0.1']:.3f} (median {t['median']:.3f}).", ""]
    ks = [k for k in KS if any(str(k) in r["best_after"] for r in result["strategies"].values())]
    lines.append("| strategy | seeds | " + " | ".join(f"best@{k}" for k in ks) +
                 " | children to top 1% (reached) | to top 0.1% (reached) | asks/s |")
    lines.append("|---" * (len(ks) + 5) + "|")
    for name, r in result["strategies"].items():
        cells = [f"{r['best_after'][str(k)]['mean']:.3f} ± {r['best_after'][str(k)]['std']:.3f}"
                 if str(k) in r["best_after"] else "" for k in ks]
        hit = []
        for level in ("top1", "top0.1"):
            c = r[f"children_to_{level}"]
            hit.append(f"{c['mean']:.0f} ({c['reached']}/{c['of']})" if c["mean"] is not None else f"- (0/{c['of']})")
        rate = r["proposals_per_second"]
        lines.append(f"| {name} | {r['seeds']} | " + " | ".join(cells) + f" | {hit[0]} | {hit[1]} | "
                     f"{'' if rate is None else f'{rate:.0f}'} |")
    return "\n".join(lines) + "\n"


def plot(curves: Dict[str, List[List[float]]], thresholds: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, runs in curves.items():
        n = min(len(r) for r in runs)
        best = np.array([np.maximum.accumulate(r[:n]) for r in runs])
        k = np.arange(1, n + 1)
        mean, std = best.mean(0), best.std(0)
        ax.plot(k, mean, label=f"{name} ({len(runs)} seeds)")
        ax.fill_between(k, mean - std, mean + std, alpha=0.15)
    for level, style in (("top1", ":"), ("top0.1", "--")):
        ax.axhline(thresholds[level], color="grey", linestyle=style, linewidth=1, label=f"{level.replace('top', 'top ')}% of the space")
    ax.set_xscale("log")
    ax.set_xlabel("children")
    ax.set_ylabel("best surrogate accuracy so far (%)")
    ax.set_title("strategies on the LaMCTS surrogate (mean ± std over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


CONFIRM = ("evolution", "predictor-evolution", "ppo")  # the surrogate's reference, its winner, the default


def confirm_real(out: str, strategies: Sequence[str] = CONFIRM, seeds: int = 3, budget: int = 200,
                 log=print) -> dict:
    """The strategies in a real search: the search's default reward (``prior+gradnorm``, the paper's
    space), ``budget`` children on 2 local workers per seed; the best reward after k children and the
    CPU-seconds each search took (driver and workers), in ``OUT/confirm.json``."""
    import resource

    from ..search.runner import SearchConfig, run_search

    path = os.path.join(out, "confirm.json")
    done = {}
    if os.path.exists(path):
        with open(path) as f:
            done = json.load(f)
    for strategy in strategies:
        for seed in range(seeds):
            key = f"{strategy}/seed{seed}"
            if key in done:
                continue
            folder = os.path.join(out, "confirm", strategy, f"seed{seed}")
            if os.path.exists(folder):  # a run cut short: its CPU time is lost, so run it again whole
                import shutil

                shutil.rmtree(folder)
            before = resource.getrusage(resource.RUSAGE_SELF)
            start = time.time()
            trials = run_search(SearchConfig(strategy=strategy, seed=seed, budget=budget, workers=2, progress=False,
                                             out=folder))
            after = resource.getrusage(resource.RUSAGE_SELF)
            # the driver's CPU (the strategy's asks and tells, the trial log) and the workers' scoring time
            driver = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            scoring = sum(t["seconds"] for t in trials)
            rewards = [t["reward"] for t in sorted(trials, key=lambda t: t["id"])]
            done[key] = {"rewards": rewards, "cpu_seconds": driver + scoring, "driver_cpu_seconds": driver,
                         "scoring_seconds": scoring, "wall_seconds": time.time() - start}
            write_json(path, done)
            log(f"confirm {key}: best {max(rewards):.4f}, {driver + scoring:.0f} CPU-s ({driver:.0f} in the driver)")
    table = {}
    for strategy in strategies:
        runs = [done[f"{strategy}/seed{s}"] for s in range(seeds)]
        table[strategy] = {"seeds": seeds, "budget": budget,
                           "cpu_seconds": statistics.mean(r["cpu_seconds"] for r in runs),
                           "driver_cpu_seconds": statistics.mean(r["driver_cpu_seconds"] for r in runs),
                           **{f"best@{k}": {"mean": statistics.mean(max(r["rewards"][:k]) for r in runs),
                                            "std": statistics.stdev(max(r["rewards"][:k]) for r in runs)}
                              for k in (20, 50, 100, budget)}}
    write_json(os.path.join(out, "confirm_table.json"), table)
    return table


def benchmark_strategies(lamcts: str, out: str = "runs/strategies", strategies: Sequence[str] = STRATEGIES,
                         seeds: int = 20, budgets: Optional[Dict[str, int]] = None, space_sample: int = 100_000,
                         parts: Sequence[str] = ("runs", "table"), log=print,
                         confirm: Sequence[str] = CONFIRM) -> Optional[dict]:
    import torch

    # one thread per process: the strategies' small models (ppo's LSTM, the MLP ensemble, the GP) run
    # several times slower when two processes' thread pools fight over the cores
    threads, omp = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # the search's worker processes
    try:
        return _benchmark_strategies(lamcts, out, strategies, seeds, budgets, space_sample, parts, log, confirm)
    finally:
        torch.set_num_threads(threads)
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp


def _benchmark_strategies(lamcts, out, strategies, seeds, budgets, space_sample, parts, log, confirm):
    from ..search.space import SearchSpace
    from .search import proposals_per_second

    budgets = {**BUDGETS, **(budgets or {})}
    os.makedirs(out, exist_ok=True)
    model_path = os.path.abspath(os.path.join(out, "surrogate.json"))
    if not os.path.exists(model_path):
        model = fit_surrogate(lamcts, out)
        log(f"surrogate fitted: held-out tau {model['fidelity']['tau']:.3f} ({model['fidelity']['tau_band85']:.3f} >= 85%)")
    os.environ[ENV] = model_path
    surrogate = load_surrogate(model_path)
    space_path = os.path.join(out, "space.json")
    if not os.path.exists(space_path):
        write_json(space_path, space_thresholds(surrogate, space_sample))
    with open(space_path) as f:
        thresholds = json.load(f)
    if "runs" in parts:
        for strategy in strategies:
            for seed in range(seeds):
                start = time.time()
                rewards = run_one(out, strategy, seed, budgets[strategy])
                log(f"{strategy} seed {seed}: best {max(rewards):.3f} after {len(rewards)} children "
                    f"({time.time() - start:.0f} s)")
    if "confirm" in parts:
        for strategy, row in confirm_real(out, confirm, log=log).items():
            log(f"real search, {strategy}: " + ", ".join(
                f"{k} {v['mean']:.4f} ± {v['std']:.4f}" for k, v in row.items() if k.startswith("best@"))
                + f"; {row['cpu_seconds']:.0f} CPU-s")
    if "table" not in parts:
        return None
    rates_path = os.path.join(out, "rates.json")
    rates = {}
    if os.path.exists(rates_path):
        with open(rates_path) as f:
            rates = json.load(f)
    space = SearchSpace(**SPACE)
    for strategy in strategies:
        if strategy not in rates:
            asks = 50 if strategy == "gp" else 200
            rates[strategy] = proposals_per_second(strategy, space, lambda d: surrogate(space.decode(d)), asks=asks)
            write_json(rates_path, rates)
    curves = {}
    for strategy in strategies:
        runs = []
        for seed in range(seeds):
            path = os.path.join(out, "runs", strategy, f"seed{seed}", "trials.jsonl")
            if os.path.exists(path):
                from ..search.trials import TrialLog

                final = sorted(TrialLog(path).final(), key=lambda t: t["id"])
                if len(final) >= budgets[strategy]:
                    runs.append([t["reward"] for t in final][:budgets[strategy]])
        if runs:
            curves[strategy] = runs
    result = summarise(curves, thresholds, rates, surrogate.model["fidelity"])
    result["budgets"] = {s: budgets[s] for s in curves}
    write_json(os.path.join(out, "strategies.json"), result)
    write_text(os.path.join(out, "strategies.md"), markdown(result))
    plot(curves, thresholds, os.path.join(out, "strategies.png"))
    log(markdown(result))
    return result


