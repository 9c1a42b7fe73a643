"""Generate the ranking ground truth (``tools/benchmark.py ground-truth``): cells of the NASNet space
trained stand-alone with several seeds on a task that ranks them stably on a 2-core CPU.

The task (:data:`TRUTH_CHILD`), chosen by measuring test-retest Kendall tau between seeds: the
``noisy-digits`` set (scikit-learn's digits, shifted and with Gaussian noise; 1,440 fixed distorted
validation images) at 12 px, N = 1 (3 normal + 2 reduction cells), F = 8, 4 epochs, lr 0.1 with
cosine decay. Plain 16 px digits saturate (0.96-0.98 for most cells), so their ranks are seed noise.

The cells (:func:`truth_cells`): the published cells of the space (NASNet-A, PNASNet-5,
AmoebaNet-A), mutations of NASNet-A (1 to 3 changed decisions, so that good cells are
represented) and uniform random samples, all fixed by ``--seed``.

Resumable: every finished (cell, seed) run is one line of ``OUT/runs.jsonl`` (appended with
fsync); a restarted generation skips them. ``OUT/cells.jsonl`` (the shipped file's format, see
:mod:`nasnet_det.benchmarks.ground_truth`) is rewritten atomically as cells complete, and
``OUT/summary.json`` holds the test-retest statistics (:func:`summarize`).
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing as mp
import os
import random
import time
from typing import Dict, List, Sequence

from .. import genotypes
from ..io import write_json, write_text
from ..search.backends import die_with_parent
from ..search.child import ChildConfig, train_child
from ..search.space import SearchSpace
from ..search.trials import TrialLog

TRUTH_CHILD = ChildConfig(dataset="noisy-digits", img_size=12, num_cells=3, num_conv_filters=8, epochs=4, lr=0.1)
SEEDS = (0, 1, 2)


def truth_cells(count: int = 150, mutations: int = 15, seed: int = 0) -> List[dict]:
    """``count`` cells: the published ones of the paper's space, ``mutations`` mutants of NASNet-A,
    the rest uniform random; each ``{"id", "source", "genotype"}``."""
    space = SearchSpace()
    rng = random.Random(seed)
    cells, seen = [], set()

    def add(genotype: genotypes.Genotype, source: str) -> None:
        key = (genotype.normal, genotype.reduction)
        if key not in seen and len(cells) < count:
            seen.add(key)
            cells.append({"id": len(cells), "source": source, "genotype": genotype.replace(name="").to_dict()})

    for g in (genotypes.NASNET_A, genotypes.PNASNET_5, genotypes.AMOEBANET_A):
        space.encode(g)  # all three are in the paper's space
        add(g.replace(name=g.name), "published")
        cells[-1]["genotype"]["name"] = g.name
    base = space.encode(genotypes.NASNET_A)
    concat = {"normal": genotypes.NASNET_A.normal.concat, "reduction": genotypes.NASNET_A.reduction.concat}
    while len(cells) < 3 + mutations:
        indices = base
        for _ in range(rng.randint(1, 3)):
            indices = space.mutate(indices, rng)
        add(space.decode(indices, concat=concat), "mutation")
    while len(cells) < count:
        add(space.decode(space.random(rng)), "random")
    return cells


def _run(genotype: dict, child: dict, seed: int) -> dict:
    """One stand-alone training (in a worker process)."""
    cfg = ChildConfig(**{**child, "seed": seed})
    result = train_child(genotype, cfg)
    out = {"accuracy": result["reward"], "params": result["params"], "seconds": result["seconds"]}
    if seed == SEEDS[0]:
        from ..modeling import build_nasnet
        from ..modeling.complexity import count_mult_adds
        from ..search.child import child_options

        net = build_nasnet(genotype, **child_options(cfg, 10, cfg.img_size))
        out["mult_adds"] = count_mult_adds(net, cfg.img_size)
    return out


def assemble(cells: Sequence[dict], runs: Sequence[dict], seeds: Sequence[int]) -> List[dict]:
    """The cells whose every seed has run, in the ground truth's format."""
    by_cell: Dict[int, Dict[int, dict]] = {}
    for r in runs:
        by_cell.setdefault(r["cell"], {})[r["seed"]] = r
    out = []
    for cell in cells:
        done = by_cell.get(cell["id"], {})
        if not all(s in done for s in seeds):
            continue
        accs = [done[s]["accuracy"] for s in seeds]
        first = done[seeds[0]]
        out.append({**cell, "accuracy": sum(accs) / len(accs), "accuracies": accs, "params": first["params"],
                    "mult_adds": first.get("mult_adds"), "seconds": [round(done[s]["seconds"], 2) for s in seeds]})
    return out


def summarize(records: Sequence[dict]) -> dict:
    """Test-retest statistics of a ground truth: the Kendall tau between every pair of seeds (the
    ceiling of any ranking method against one seed), the split-half tau of seed means, the spread
    between cells and the seed noise."""
    import numpy as np
    from scipy.stats import kendalltau

    if len(records) < 3:
        return {"cells": len(records)}
    acc = np.array([r["accuracies"] for r in records])
    k = acc.shape[1]
    pairs = [kendalltau(acc[:, i], acc[:, j])[0] for i in range(k) for j in range(i + 1, k)]
    # one seed against the mean of the others: closer to how well a method can match a seed mean
    rest = [kendalltau(acc[:, i], np.delete(acc, i, 1).mean(1))[0] for i in range(k)] if k > 2 else []
    return {"cells": len(records), "seeds": k, "tau_between_seeds": [round(float(t), 4) for t in pairs],
            "tau_between_seeds_mean": round(float(np.mean(pairs)), 4),
            "tau_seed_vs_mean_of_others": [round(float(t), 4) for t in rest],
            "spread_between_cells": round(float(acc.mean(1).std(ddof=1)), 4),
            "seed_noise": round(float(acc.std(1, ddof=1).mean()), 4),
            "accuracy_range": [round(float(acc.mean(1).min()), 4), round(float(acc.mean(1).max()), 4)],
            "cpu_seconds": round(float(sum(sum(r["seconds"]) for r in records)), 1)}


def generate(out: str, count: int = 150, mutations: int = 15, seed: int = 0, seeds: Sequence[int] = SEEDS,
             workers: int = 2, child: ChildConfig = TRUTH_CHILD, progress: bool = True) -> List[dict]:
    """Train every (cell, seed) not yet in ``OUT/runs.jsonl``; returns the assembled cells."""
    os.makedirs(out, exist_ok=True)
    cells = truth_cells(count, mutations, seed)
    log = TrialLog(os.path.join(out, "runs.jsonl"))
    log.repair()
    runs = [r for r in log.read() if r.get("cell", -1) < len(cells)]
    done = {(r["cell"], r["seed"]) for r in runs}
    todo = [(c, s) for c in cells for s in seeds if (c["id"], s) not in done]
    settings = dataclasses.asdict(dataclasses.replace(child, threads=1))
    write_json(os.path.join(out, "settings.json"), {"child": settings, "count": count, "mutations": mutations,
                                                    "seed": seed, "seeds": list(seeds)})
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(cells) * len(seeds), initial=len(done), unit="run", desc="ground truth")

    def publish():
        records = assemble(cells, runs, seeds)
        write_text(os.path.join(out, "cells.jsonl"), "".join(_line(r) for r in records))
        write_json(os.path.join(out, "summary.json"), summarize(records))
        return records

    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=die_with_parent,
                                initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_run, cells[c["id"]]["genotype"], settings, s): (c["id"], s) for c, s in todo}
        for future in cf.as_completed(futures):
            cell, s = futures[future]
            record = {"cell": cell, "seed": s, **future.result(), "time": time.time()}
            log.append(record)
            runs.append(record)
            if bar is not None:
                bar.update(1)
            if sum(1 for r in runs if r["cell"] == cell) == len(seeds):
                publish()
    if bar is not None:
        bar.close()
    return publish()


def _line(record: dict) -> str:
    import json

    return json.dumps(record) + "\n"
