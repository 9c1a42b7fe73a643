"""One-shot against per-child search, in one run: rank fidelity, cost per cell, quality at equal time.

- **Rank fidelity**: ``cells`` random cells are trained stand-alone (the per-child reward) and
  scored with the supernet's inherited weights; Kendall's tau between the two, and a scatter plot.
- **Cost**: seconds per evaluated cell. Per-child: one child's training. One-shot: the supernet's
  training spread over the ``scored`` cells it scores, plus one scoring.
- **Quality at equal time**: the one-shot random search scores ``scored`` cells and its best cell
  is trained stand-alone; a per-child random search gets the one-shot run's wall time (its first
  cells are the ``cells`` above, then more random cells until that time is spent).
"""
from __future__ import annotations

import itertools
import math
import os
import random
import tempfile
import time
from dataclasses import asdict
from typing import List, Optional

from ..io import write_json


def kendall_tau(a: List[float], b: List[float]) -> float:
    """Kendall's tau-b (ties counted as scipy does)."""
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def plot_rank_fidelity(standalone: List[float], inherited: List[float], tau: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.scatter(standalone, inherited)
    ax.set_xlabel("stand-alone accuracy (per-child training)")
    ax.set_ylabel("accuracy with the supernet's weights")
    ax.set_title(f"rank fidelity over {len(standalone)} random cells: Kendall tau {tau:.2f}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def benchmark_oneshot(cells: int = 16, scored: int = 200, supernet_epochs: int = 20, child=None, seed: int = 0,
                      out: Optional[str] = None, progress: bool = True, share_inputs: bool = False,
                      tau_every: Optional[int] = None, log=print) -> dict:
    """Run the comparison; returns (and writes to ``out``/oneshot.json) every figure."""
    import torch
    from tqdm import tqdm

    from ..search.child import ChildConfig, train_child
    from ..search.config import OneShotConfig
    from ..search.tasks.classification import ClassificationSupernet, calibration_batches, score_child
    from ..search.runner import SearchConfig
    from ..search.space import SearchSpace

    child = child or ChildConfig()
    out = out or tempfile.mkdtemp(prefix="oneshot_bench_")
    os.makedirs(out, exist_ok=True)
    space = SearchSpace()
    rng = random.Random(seed)
    sample = [space.decode(space.random(rng), name=f"cell_{i}") for i in range(max(cells, 2))]
    torch.set_num_threads(child.threads)

    def standalone(genotype):
        start = time.perf_counter()
        reward = train_child(genotype.to_dict(), child)["reward"]
        return reward, time.perf_counter() - start

    log(f"one-shot benchmark: {len(sample)} cells stand-alone, supernet {supernet_epochs} epochs"
        f"{' (inputs shared)' if share_inputs else ''}, {scored} cells scored; child {child}")
    per_child = [standalone(g) for g in tqdm(sample, desc="per-child training", unit="cell", disable=not progress,
                                             dynamic_ncols=True)]

    cfg = SearchConfig(strategy="random", method="oneshot", budget=scored, workers=1, out=os.path.join(out, "supernet"),
                       child=child, oneshot=OneShotConfig(epochs=supernet_epochs, share_inputs=share_inputs), progress=progress, seed=seed)
    os.makedirs(cfg.out, exist_ok=True)
    start = time.perf_counter()
    trainer = ClassificationSupernet(cfg, space, progress=progress)
    data = trainer.data
    calibration = calibration_batches(data, child, cfg.oneshot.calibration_batches)
    standalone_rewards = [r for r, _ in per_child]
    tau_by_epochs = []  # how rank fidelity grows with the supernet's training (not timed)
    for epochs in range(tau_every or supernet_epochs, supernet_epochs, tau_every or supernet_epochs):
        trainer.train_round(stop_at=epochs * trainer.steps_per_epoch)
        pause = time.perf_counter()
        scores = [score_child(trainer.net, g, data, calibration) for g in sample]
        tau_by_epochs.append({"epochs": epochs, "kendall_tau": kendall_tau(standalone_rewards, scores),
                              "mean_inherited": sum(scores) / len(scores)})
        log(f"  after {epochs} supernet epochs: Kendall tau {tau_by_epochs[-1]['kendall_tau']:.3f}, mean accuracy "
            f"with inherited weights {tau_by_epochs[-1]['mean_inherited']:.3f}")
        start += time.perf_counter() - pause
    trainer.train_round()
    train_s = time.perf_counter() - start
    candidates = sample + [space.decode(space.random(rng), name=f"cell_{i}") for i in range(len(sample), scored)]
    inherited, score_start = [], time.perf_counter()
    for g in tqdm(candidates, desc="one-shot scoring", unit="cell", disable=not progress, dynamic_ncols=True):
        inherited.append(score_child(trainer.net, g, data, calibration))
    score_s = time.perf_counter() - score_start
    oneshot_s = train_s + score_s

    sample_inherited = inherited[: len(sample)]
    tau = kendall_tau(standalone_rewards, sample_inherited)
    plot_rank_fidelity(standalone_rewards, sample_inherited, tau, os.path.join(out, "rank_fidelity.png"))

    best = max(range(len(candidates)), key=lambda i: inherited[i])
    best_standalone = per_child[best][0] if best < len(sample) else standalone(candidates[best])[0]
    # per-child random search with the one-shot run's wall time
    spent, rewards = 0.0, []
    for i in itertools.count():
        if spent >= oneshot_s:
            break
        reward, seconds = per_child[i] if i < len(per_child) else standalone(space.decode(space.random(rng)))
        spent += seconds
        rewards.append(reward)
    child_s = sum(s for _, s in per_child) / len(per_child)
    oneshot_per_cell = oneshot_s / len(candidates)
    result = {
        "cells": len(sample), "scored": len(candidates), "supernet_epochs": supernet_epochs, "child": asdict(child),
        "share_inputs": share_inputs, "tau_by_epochs": tau_by_epochs,
        "kendall_tau": tau, "standalone": standalone_rewards, "inherited": sample_inherited,
        "per_child_s_per_cell": child_s, "supernet_train_s": train_s, "scoring_s_per_cell": score_s / len(candidates),
        "oneshot_s_per_cell": oneshot_per_cell, "cost_ratio": child_s / oneshot_per_cell,
        # the ratio as the supernet's training spreads over more cells, and where it reaches 10x
        "cost_ratio_limit": child_s / (score_s / len(candidates)),
        "cells_for_10x": (None if child_s / 10 <= score_s / len(candidates)
                          else math.ceil(train_s / (child_s / 10 - score_s / len(candidates)))),
        "oneshot_wall_s": oneshot_s, "oneshot_best_standalone": best_standalone,
        "per_child_cells_in_same_time": len(rewards), "per_child_wall_s": spent, "per_child_best": max(rewards),
    }
    write_json(os.path.join(out, "oneshot.json"), result)
    log(f"rank fidelity: Kendall tau {tau:.3f} over {len(sample)} random cells (aim >= 0.4); "
        f"plot: {os.path.join(out, 'rank_fidelity.png')}")
    log(f"cost per evaluated cell: per-child {child_s:.1f} s, one-shot {oneshot_per_cell:.2f} s "
        f"(supernet {train_s:.0f} s over {len(candidates)} cells + {score_s / len(candidates):.2f} s scoring): "
        f"{child_s / oneshot_per_cell:.1f}x less (aim >= 10x)")
    log(f"  with more cells scored the ratio tends to {result['cost_ratio_limit']:.1f}x; 10x from "
        f"{result['cells_for_10x'] or 'never'} cells scored per supernet")
    log(f"equal time ({oneshot_s:.0f} s): one-shot best cell {best_standalone:.4f} stand-alone; per-child random "
        f"search best {max(rewards):.4f} of {len(rewards)} cells ({spent:.0f} s)")
    return result
