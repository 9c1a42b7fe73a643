"""Every ranking method against the shipped ground truth (``tools/benchmark.py ranking``).

Two phases, both resumable:

1. **Scores.** Every method scores the ground truth's cells (:func:`nasnet_det.benchmarks.truth.truth_cells`,
   so scoring needs no finished ground truth): ``OUT/scores/<method>.jsonl``, one line per cell.
   - ``params``, ``flops`` and the zero-cost proxies on every cell, at the ground truth's child size;
   - ``per-child`` at each budget of ``budgets`` (epochs x image size), seeds 0 and 1, on every
     ``stride``-th cell: its tau against the truth and its own test-retest tau (seed 0 vs 1);
   - ``oneshot`` for each supernet variant (initialisation recipe x path sampling), the supernet
     trained on the ground truth's task for ``supernet_epochs`` and its loss and the inherited
     accuracy of random paths recorded per epoch.
   - ``ablation``: the supernet's recipe without each of its parts in turn, trained ``ablation_epochs``
     epochs: the training curves only (loss, inherited accuracy of random paths).
2. **Metrics** (:func:`ranking_table`): against the truth's mean accuracy, Kendall tau, Spearman
   rho, top-10% precision, top-1 regret and CPU seconds per cell; and the search outcome at equal
   wall time: a random search that can afford ``T / seconds per cell`` cells of the pool picks its
   best-scored one, whose truth is reported as a percentile of the pool (mean and spread over seeds).

Writes ``OUT/ranking.json``, ``OUT/ranking.md`` and one scatter plot per method (``OUT/scatter_*.png``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from typing import Dict, List, Optional, Sequence, Tuple

from ..io import write_json, write_text

CHEAP = ("params", "flops", "synflow", "naswot", "jacob_cov", "snip", "grad_norm", "vote")
BUDGETS = ((1, 12), (2, 12), (1, 8))  # per-child budgets: (epochs, image size)
VARIANTS = (("none", "uniform"), ("all", "uniform"), ("all", "fair"))  # supernet: (recipe, sampling)


def _read_jsonl(path: str) -> List[dict]:
    from ..search.trials import TrialLog

    return TrialLog(path).read()


def _score_file(out: str, key: str, cells: Sequence[dict], score, progress: bool) -> List[dict]:
    """Score ``cells`` into ``OUT/scores/<key>.jsonl`` (resumable); returns the records."""
    from ..search.trials import TrialLog

    log = TrialLog(os.path.join(out, "scores", f"{key}.jsonl"))
    os.makedirs(os.path.dirname(log.path), exist_ok=True)
    log.repair()
    done = {r["id"]: r for r in log.read()}
    todo = [c for c in cells if c["id"] not in done]
    bar = None
    if progress and todo:
        from tqdm import tqdm
        bar = tqdm(total=len(cells), initial=len(cells) - len(todo), unit="cell", desc=key)
    for c in todo:
        record = {"id": c["id"], **score(c)}
        log.append(record)
        done[c["id"]] = record
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return [done[c["id"]] for c in cells]


def score_cheap(out: str, cells: Sequence[dict], child, progress: bool = True) -> None:
    from .. import genotypes
    from ..search.ranking import RankConfig, Scorer, finish_scores

    for method in CHEAP:
        scorer = Scorer(RankConfig(method, child))
        records = _score_file(out, method, cells, lambda c: scorer(genotypes.Genotype.from_dict(c["genotype"])),
                              progress)
        if method == "vote":
            finish_scores("vote", records)
            write_text(os.path.join(out, "scores", "vote.jsonl"), "".join(json.dumps(r) + "\n" for r in records))


def score_per_child(out: str, cells: Sequence[dict], child, budgets=BUDGETS, progress: bool = True,
                    seeds: Sequence[int] = (0, 1)) -> None:
    from ..search.child import train_child

    for epochs, size in budgets:
        for seed in seeds:
            cfg = dataclasses.replace(child, epochs=epochs, img_size=size, seed=seed)

            def score(c, cfg=cfg):
                r = train_child(c["genotype"], cfg)
                return {"score": r["reward"], "seconds": r["seconds"]}

            _score_file(out, f"per-child_e{epochs}_s{size}_seed{seed}", cells, score, progress)


def train_supernet(out: str, child, recipe: str, sampling: str, epochs: int, progress: bool = True) -> dict:
    """Train one supernet variant on the truth's task; per epoch, its training loss and the mean
    inherited accuracy of 8 random paths. Returns its record (``OUT/supernet_<variant>/``)."""
    import torch

    from ..search.config import OneShotConfig
    from ..search.tasks.classification import ClassificationSupernet, calibration_batches, score_child
    from ..search.runner import SearchConfig
    from ..search.space import SearchSpace

    folder = os.path.join(out, f"supernet_{recipe.replace(',', '+')}_{sampling}")
    curve_path = os.path.join(folder, "curve.json")
    curve = json.load(open(curve_path)) if os.path.exists(curve_path) else []
    os.makedirs(folder, exist_ok=True)
    cfg = SearchConfig(method="oneshot", strategy="random", workers=1, out=folder, progress=False, child=child,
                       oneshot=OneShotConfig(epochs=epochs, recipe=recipe, sampling=sampling))
    space = SearchSpace()
    trainer = ClassificationSupernet(cfg, space, progress=False)
    probes = [space.decode(space.random(random.Random(10_000 + i))) for i in range(8)]
    calibration = calibration_batches(trainer.data, child, 2)
    while trainer.rounds == 0:
        epoch = trainer.step // trainer.steps_per_epoch + 1
        start = time.perf_counter()
        trainer.train_round(stop_at=epoch * trainer.steps_per_epoch)
        seconds = time.perf_counter() - start
        state = trainer.net.state_dict()
        inherited = [score_child(trainer.net, g, trainer.data, calibration) for g in probes]
        trainer.net.load_state_dict(state)  # scoring recalibrated BN statistics: keep the training ones
        curve = [c for c in curve if c["epoch"] < epoch] + [
            {"epoch": epoch, "step": trainer.step, "loss": trainer.last_loss, "seconds": seconds,
             "inherited_accuracy": sum(inherited) / len(inherited)}]
        write_json(curve_path, curve)
        if progress:
            print(f"supernet {recipe}/{sampling} epoch {epoch}: loss {trainer.last_loss:.3f}, random paths "
                  f"{curve[-1]['inherited_accuracy']:.3f} ({seconds:.1f} s)", flush=True)
        torch.manual_seed(epoch)
    return {"path": trainer.path, "curve": curve, "seconds": sum(c["seconds"] for c in curve), "trainer": trainer,
            "calibration": calibration}


def score_oneshot(out: str, cells: Sequence[dict], child, epochs: int, variants=VARIANTS, progress: bool = True) -> None:
    from .. import genotypes
    from ..search.tasks.classification import score_child

    from ..genotypes import PAPER_OPS

    for recipe, sampling in variants:
        # fair sampling trains one path per op each step: the same forward/backward passes in 1/13 of the steps
        steps = epochs if sampling == "uniform" else max(1, round(epochs / len(PAPER_OPS)))
        sn = train_supernet(out, child, recipe, sampling, steps, progress)
        trainer, calibration = sn["trainer"], sn["calibration"]
        def score(c):
            start = time.perf_counter()
            s = score_child(trainer.net, genotypes.Genotype.from_dict(c["genotype"]), trainer.data, calibration)
            return {"score": s, "seconds": time.perf_counter() - start, "supernet_seconds": sn["seconds"]}

        _score_file(out, f"oneshot_{recipe.replace(',', '+')}_{sampling}", cells, score, progress)


# ------------------------------------------------------------------------------------------------

def equal_time_percentiles(scores: Sequence[float], truth: Sequence[float], seconds_per_cell: float,
                           wall: float, seeds: int = 20, fixed: float = 0.0) -> Tuple[float, float, int]:
    """A random search with ``wall`` seconds scores ``(wall - fixed) / seconds_per_cell`` random
    cells of the pool and picks its best; the pick's truth percentile in the pool, mean and std
    over ``seeds`` draws, and the cells it afforded."""
    import numpy as np

    n = len(truth)
    afford = int(max(1, min(n, (wall - fixed) // max(seconds_per_cell, 1e-9)))) if wall > fixed else 0
    if afford == 0:
        return float("nan"), float("nan"), 0
    percentiles = []
    for seed in range(seeds):
        pool = random.Random(seed).sample(range(n), afford)
        pick = max(pool, key=lambda i: scores[i])
        percentiles.append(sum(t <= truth[pick] for t in truth) / n)
    return float(np.mean(percentiles)), float(np.std(percentiles)), afford


def ranking_table(out: str, truth_records: Sequence[dict], wall: float = 600.0, cores: int = 2) -> dict:
    """Metrics of every score file in ``OUT/scores`` against the truth records."""
    from ..search.ranking import rank_metrics
    from .truth import summarize

    truth = {r["id"]: r["accuracy"] for r in truth_records}
    rows = {}
    folder = os.path.join(out, "scores")
    files = sorted(f[:-6] for f in os.listdir(folder) if f.endswith(".jsonl")) if os.path.isdir(folder) else []
    merged: Dict[str, Dict[int, dict]] = {}
    for key in files:
        recs = {r["id"]: r for r in _read_jsonl(os.path.join(folder, f"{key}.jsonl")) if r.get("score") is not None}
        if key.startswith("per-child") and key.endswith("_seed1"):
            continue
        if key.startswith("per-child"):
            base = key[: -len("_seed0")]
            other = {r["id"]: r for r in _read_jsonl(os.path.join(folder, f"{base}_seed1.jsonl"))}
            both = {i: r for i, r in recs.items() if i in other}
            merged[base + " (seed 0)"] = recs
            merged[base + " (mean of 2)"] = {i: {"score": (r["score"] + other[i]["score"]) / 2,
                                                 "seconds": r["seconds"] + other[i]["seconds"]} for i, r in both.items()}
            ids = [i for i in both if i in truth]
            if len(ids) >= 3:
                from scipy.stats import kendalltau
                rows.setdefault("_retest", {})[base] = float(kendalltau([both[i]["score"] for i in ids],
                                                                        [other[i]["score"] for i in ids])[0])
            continue
        merged[key] = recs
    for key, recs in merged.items():
        ids = [i for i in recs if i in truth]
        if len(ids) < 3:
            continue
        scores, t = [recs[i]["score"] for i in ids], [truth[i] for i in ids]
        scoring = sum(recs[i]["seconds"] for i in ids) / len(ids)
        fixed = max(recs[i].get("supernet_seconds", 0.0) for i in ids)  # one-shot: the supernet first
        m = rank_metrics(scores, t)
        # a search of `wall` seconds on `cores` one-thread workers has wall * cores CPU-seconds
        equal_time = {}
        for w in sorted({60.0, 180.0, float(wall)}):
            mean, std, afford = equal_time_percentiles(scores, t, scoring, w * cores, fixed=fixed)
            equal_time[f"{w:.0f}"] = {"percentile": mean, "std": std, "cells": afford}
        rows[key] = {**m, "seconds_per_cell": scoring + fixed / len(ids), "scoring_seconds": scoring,
                     "fixed_seconds": fixed, "tau_per_cpu_second": m["kendall_tau"] / (scoring + fixed / len(ids)),
                     "equal_time": equal_time}
    result = {"truth": summarize(truth_records), "wall_seconds": wall, "cores": cores, "methods": rows}
    curves = {}
    for name in sorted(os.listdir(out)) if os.path.isdir(out) else []:
        path = os.path.join(out, name, "curve.json")
        if name.startswith("supernet_") and os.path.exists(path):
            curves[name[len("supernet_"):]] = json.load(open(path))
    result["supernet_curves"] = curves
    write_json(os.path.join(out, "ranking.json"), result)
    write_text(os.path.join(out, "ranking.md"), markdown(result))
    plot_scatters(out, merged, truth)
    return result


def markdown(result: dict) -> str:
    t = result["truth"]
    lines = [f"Ground truth: {t.get('cells')} cells x {t.get('seeds')} seeds; test-retest Kendall tau between seeds "
             f"{t.get('tau_between_seeds')} (mean {t.get('tau_between_seeds_mean')}); spread between cells "
             f"{t.get('spread_between_cells')}, seed noise {t.get('seed_noise')}.", "",
             f"| method | cells | Kendall tau | Spearman rho | top-10% precision | top-1 regret | CPU s / cell | "
             f"pick percentile after 1 / 3 / {result['wall_seconds'] / 60:.0f} min on {result.get('cores', 2)} cores "
             f"(std; cells scored) |", "|---|---|---|---|---|---|---|---|"]
    rows = {k: v for k, v in result["methods"].items() if not k.startswith("_")}
    for key, r in sorted(rows.items(), key=lambda kv: -kv[1]["kendall_tau"]):
        lines.append(f"| {key} | {r['cells']} | {r['kendall_tau']:.3f} | {r['spearman_rho']:.3f} | "
                     f"{r['top_precision']:.2f} | {r['regret']:.4f} | {r['seconds_per_cell']:.2f} | " +
                     " / ".join("-" if not e["cells"] else f"{100 * e['percentile']:.0f} ({100 * e['std']:.0f}; {e['cells']})"
                                for e in r["equal_time"].values()) + " |")
    retest = result["methods"].get("_retest", {})
    if retest:
        lines += ["", "Per-child reward, test-retest Kendall tau (seed 0 vs seed 1): " +
                  ", ".join(f"{k} {v:.3f}" for k, v in retest.items())]
    for name, curve in result.get("supernet_curves", {}).items():
        lines += ["", f"Supernet {name}: epoch / loss / inherited accuracy of random paths: " +
                  "; ".join(f"{c['epoch']} {c['loss']:.3f} {c['inherited_accuracy']:.3f}" for c in curve[::max(1, len(curve) // 8)])]
    return "\n".join(lines) + "\n"


def plot_scatters(out: str, merged: Dict[str, Dict[int, dict]], truth: Dict[int, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in merged if len([i for i in merged[k] if i in truth]) >= 3]
    if not keys:
        return
    cols = 4
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), dpi=90, squeeze=False)
    from scipy.stats import kendalltau
    for ax, key in zip(axes.flat, keys):
        ids = [i for i in merged[key] if i in truth]
        x, y = [truth[i] for i in ids], [merged[key][i]["score"] for i in ids]
        ax.scatter(x, y, s=8)
        ax.set_title(f"{key}: tau {kendalltau(x, y)[0]:.2f}", fontsize=9)
        ax.set_xlabel("ground-truth accuracy", fontsize=8)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "scatter.png"))
    plt.close(fig)


def benchmark_ranking(out: str = "runs/ranking", truth_path: Optional[str] = None, stride: int = 5,
                      supernet_epochs: int = 45, budgets=BUDGETS, variants=VARIANTS, wall: float = 600.0,
                      parts: Sequence[str] = ("cheap", "per-child", "oneshot"), quick: bool = False,
                      progress: bool = True, seeds: Sequence[int] = (0, 1), ablation_epochs: int = 10) -> dict:
    """Score (resumably) and measure; ``truth_path``: a ground truth ``cells.jsonl`` (default: the shipped one)."""
    from .ground_truth import CELLS
    from .truth import TRUTH_CHILD, truth_cells

    truth_path = truth_path or CELLS
    truth_records = _read_jsonl(truth_path)
    cells = truth_cells()
    child = dataclasses.replace(TRUTH_CHILD, threads=1)
    if quick:  # checks the command: a few cells, tiny budgets
        cells, budgets, variants, supernet_epochs = cells[:4], ((1, 8),), (("all", "uniform"),), 1
        child = dataclasses.replace(child, max_train_batches=2)
    if "cheap" in parts:
        score_cheap(out, cells, child, progress)
    if "per-child" in parts:
        score_per_child(out, cells[::stride] if not quick else cells, child, budgets, progress, seeds)
    if "oneshot" in parts:
        score_oneshot(out, cells, child, supernet_epochs, variants, progress)
    if "ablation" in parts:  # the recipe without each of its parts: the training curves only
        from ..search.supernet import RECIPE

        for part in RECIPE:
            recipe = ",".join(p for p in RECIPE if p != part)
            train_supernet(out, child, recipe, "uniform", ablation_epochs if not quick else 1, progress)
    result = ranking_table(out, truth_records, wall)
    if progress:
        print(markdown(result))
    return result
