"""Ranking methods against public, full-scale CIFAR-10 accuracies (``tools/benchmark.py transfer``).

The shipped ground truth (:mod:`.truth`) is trained on the per-child reward's own toy task; this
benchmark asks whether a method ranks cells that others trained at full scale: LaMCTS (200-epoch
CIFAR-10 test accuracy) and NAS-Bench-301 (CIFAR-10 validation accuracy), read by :mod:`.public`.

Per truth, in ``OUT/<truth>/`` (resumable: every score file is an append-only log):

- ``sample.jsonl``: the cells scored, ``--sample`` of them spread over the accuracy range
  (:func:`nasnet_det.benchmarks.public.spread_sample`, seeded), or all of them.
- ``scores/<method>_seed<k>.jsonl``: each method's score of each cell, seeds 0 and 1 (the
  test-retest tau), with the CPU-seconds it took (one thread):
  - ``cheap``: ``params``, ``flops``, ``prior`` and the zero-cost proxies, on the search's default child;
  - ``ladder``: the per-child reward at each fidelity of :data:`LADDER`; each run also yields the
    learning-curve score ``sotl`` (minus the last epoch's mean training loss, SoTL-E) at no cost.
- ``transfer.json`` / ``transfer.md``: per method, Kendall tau, Spearman rho, top-10% precision,
  regret and percentile of the top pick, on all sampled cells, on the >= 85% band and on the two
  halves of the sample (half A chooses among candidates, half B reports), CPU-seconds per cell and
  the test-retest tau; ``ladder.png``: tau against CPU-seconds per cell, one point per fidelity.

The LaMCTS data is CC BY-NC 4.0: it is read from a path, never shipped, and nothing is fitted to
it (``--fit-prior`` fits the ``prior`` method to NAS-Bench-301 only).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence

from ..io import write_json, write_text
from .public import read_truth, spread_sample

CHEAP = ("params", "flops", "prior", "synflow", "naswot", "jacob_cov", "snip", "grad_norm",
         "prior+gradnorm", "naswot+gradnorm", "prior+naswot+gradnorm")
# per-child fidelities: name -> ChildConfig fields over the search's default child
LADDER: Dict[str, dict] = {
    "nd12-F8-e2": {},  # the search's default reward (noisy digits, 12 px, N = 1, F = 8, 2 epochs)
    "nd12-F8-e1": {"epochs": 1},
    "nd12-F16-e2": {"num_conv_filters": 16},
    "d16-F8-e2": {"dataset": "digits", "img_size": 16},
    "rot16-F8-e3": {"dataset": "photo-rotation", "img_size": 16, "epochs": 3, "batch_size": 32, "lr": 0.05},
}
BAND = 85.0  # percent: the LaMCTS cells that trained well


def fit_prior(nb301_path: str, out: Optional[str] = None) -> dict:
    """Fit :mod:`nasnet_det.search.prior` to NASLib's NAS-Bench-301 file; write it to ``out``
    (default: the package's ``prior_nb301.json``)."""
    from .. import genotypes
    from ..search import prior

    records = read_truth(nb301_path)
    rows = [prior.features(genotypes.Genotype.from_dict(r["genotype"])) for r in records]
    model = prior.fit(rows, [r["accuracy"] for r in records],
                      source="NAS-Bench-301 CIFAR-10 val_accuracy of the 500 cells of automl/NASLib "
                             "naslib/data/zc_nasbench301.json (Apache-2.0), Siems et al. 2020")
    write_json(out or prior.MODEL_PATH, model)
    return model


def cross_validated_prior(cells: Sequence[dict], seed: int = 0) -> Dict[int, float]:
    """Each cell scored by the prior fitted to the other half of ``cells`` (the halves of :func:`halves`)."""
    from .. import genotypes
    from ..search import prior

    features = {c["id"]: prior.features(genotypes.Genotype.from_dict(c["genotype"])) for c in cells}
    accuracy = {c["id"]: c["accuracy"] for c in cells}
    scores = {}
    for fit_on, score_on in zip(halves(list(features), seed), reversed(halves(list(features), seed))):
        model = prior.fit([features[i] for i in sorted(fit_on)], [accuracy[i] for i in sorted(fit_on)])
        scores.update({i: prior.score(genotypes.Genotype.from_dict(next(c["genotype"] for c in cells if c["id"] == i)),
                                      model) for i in score_on})
    return scores


def _cpu_timed(score):
    """``score`` with the CPU-seconds it used (one thread: the figure holds whatever else shares the cores)."""
    import time

    def timed(c):
        start = time.process_time()
        result = score(c)
        return {**result, "cpu_seconds": time.process_time() - start}
    return timed


def _scorer(method: str, child):
    from .. import genotypes
    from ..search.ranking import RankConfig, Scorer

    scorer = Scorer(RankConfig(method, child))
    return _cpu_timed(lambda c: scorer(genotypes.Genotype.from_dict(c["genotype"])))


def score_cheap(folder: str, cells: Sequence[dict], child, seeds=(0, 1), methods=CHEAP, progress=True) -> None:
    from .ranking import _score_file

    for method in methods:
        # params, flops and prior do not depend on the seed: one run
        for seed in (seeds if method not in ("params", "flops", "prior") else seeds[:1]):
            score = _scorer(method, dataclasses.replace(child, seed=seed))
            _score_file(folder, f"{method}_seed{seed}", cells, score, progress)


def score_ladder(folder: str, cells: Sequence[dict], child, fidelities: Sequence[str], seeds=(0, 1),
                 progress=True) -> None:
    from ..search.child import train_child
    from .ranking import _score_file

    for seed in seeds:  # every fidelity at seed 0 first: the test-retest runs come last
        for name in fidelities:
            cfg = dataclasses.replace(child, **LADDER[name], seed=seed)

            def score(c, cfg=cfg):
                r = train_child(c["genotype"], cfg)
                return {"score": r["reward"], "sotl": -r["train_losses"][-1], "seconds": r["seconds"]}

            _score_file(folder, f"per-child:{name}_seed{seed}", cells, _cpu_timed(score), progress)


def _read(path: str) -> Dict[int, dict]:
    from .ranking import _read_jsonl

    return {r["id"]: r for r in _read_jsonl(path)}


def method_scores(folder: str) -> Dict[str, Dict[int, Dict[int, dict]]]:
    """``{method: {seed: {cell id: {"score", "seconds"}}}}`` from ``folder/scores``; a per-child
    file gives two methods, its reward and its ``sotl:`` learning-curve score."""
    scores: Dict[str, Dict[int, Dict[int, dict]]] = {}
    root = os.path.join(folder, "scores")
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        if not name.endswith(".jsonl") or "_seed" not in name:
            continue
        method, _, seed = name[:-6].rpartition("_seed")
        records = _read(os.path.join(root, name))
        scores.setdefault(method, {})[int(seed)] = records
        if method.startswith("per-child:"):
            scores.setdefault("sotl:" + method.split(":", 1)[1], {})[int(seed)] = {
                i: {"score": r["sotl"], "seconds": r["seconds"], **({"cpu_seconds": r["cpu_seconds"]} if "cpu_seconds" in r else {})}
                for i, r in records.items() if "sotl" in r}
    return scores


def _vote(folder: str) -> Dict[str, Dict[int, float]]:
    """``vote`` (Abdelfattah et al. 2021: the mean rank under synflow, jacob_cov and snip) from their
    seed-0 score files, where all three are there."""
    from ..search.proxies import VOTE, vote

    scores = method_scores(folder)
    if not all(name in scores for name in VOTE):
        return {}
    ids = sorted(set.intersection(*(set(scores[name][0]) for name in VOTE)))
    return {"vote": dict(zip(ids, vote([{n: scores[n][0][i]["score"] for n in VOTE} for i in ids])))}


def _cost(records: Dict[int, dict], ids: Sequence[int]) -> float:
    """Mean CPU-seconds per cell where the records hold them, else wall seconds (scored alone: the same)."""
    return sum(records[i].get("cpu_seconds", records[i]["seconds"]) for i in ids) / len(ids)


def halves(ids: Sequence[int], seed: int = 0) -> tuple:
    """The sample's two halves: A chooses among candidates, B reports (seeded, disjoint)."""
    import random

    ordered = sorted(ids)
    random.Random(seed).shuffle(ordered)
    return set(ordered[: len(ordered) // 2]), set(ordered[len(ordered) // 2:])


def table(folder: str, truth: Dict[int, float], extra: Optional[Dict[str, Dict[int, float]]] = None) -> dict:
    """Every method's metrics against ``truth`` (cell id -> accuracy); each score is joined to the
    truth of its own cell id."""
    from scipy.stats import kendalltau

    from ..search.ranking import rank_metrics

    half_a, half_b = halves(list(truth))
    rows = {}
    methods = method_scores(folder)
    for name, values in (extra or {}).items():  # scores that come with the truth (NASLib's zero-cost columns)
        methods[name] = {0: {i: {"score": v, "seconds": float("nan")} for i, v in values.items()}}
    for method, by_seed in methods.items():
        first = by_seed[min(by_seed)]
        ids = sorted(i for i in first if i in truth and first[i].get("score") is not None)
        if len(ids) < 6:
            continue
        s, t = [first[i]["score"] for i in ids], [truth[i] for i in ids]
        row = {"all": rank_metrics(s, t), "seconds_per_cell": _cost(first, ids)}
        for label, keep in (("band", lambda i: truth[i] >= BAND), ("half_a", half_a.__contains__),
                            ("half_b", half_b.__contains__)):
            sub = [i for i in ids if keep(i)]
            if len(sub) >= 6 and len(sub) < len(ids):
                row[label] = rank_metrics([first[i]["score"] for i in sub], [truth[i] for i in sub])
        if len(by_seed) > 1:
            other = by_seed[sorted(by_seed)[1]]
            both = [i for i in ids if i in other]
            if len(both) >= 6:
                row["retest_tau"] = float(kendalltau([first[i]["score"] for i in both],
                                                     [other[i]["score"] for i in both])[0])
                row["retest_cells"] = len(both)
        rows[method] = row
    return rows


def markdown(name: str, rows: dict, cells: int) -> str:
    def cell(m, key):
        return "-" if m is None else (f"{m[key]:.3f}" if key in ("kendall_tau", "spearman_rho") else
                                      f"{m[key]:.2f}" if key in ("top_precision", "regret") else f"{100 * m[key]:.0f}")

    lines = [f"### {name}: {cells} cells", "",
             "| method | cells | Kendall tau | Spearman rho | top-10% precision | regret of the top pick | its percentile "
             f"| tau >= {BAND:.0f}% | tau half A / B | CPU s / cell | test-retest tau |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, r in sorted(rows.items(), key=lambda kv: -kv[1]["all"]["kendall_tau"]):
        m, band = r["all"], r.get("band")
        secs = r["seconds_per_cell"]
        lines.append(f"| {method} | {m['cells']} | {cell(m, 'kendall_tau')} | {cell(m, 'spearman_rho')} | "
                     f"{cell(m, 'top_precision')} | {cell(m, 'regret')} | {cell(m, 'pick_percentile')} | "
                     f"{cell(band, 'kendall_tau')} | {cell(r.get('half_a'), 'kendall_tau')} / "
                     f"{cell(r.get('half_b'), 'kendall_tau')} | {'-' if secs != secs else f'{secs:.3f}'} | "
                     f"{r['retest_tau']:.3f} |" if "retest_tau" in r else
                     f"| {method} | {m['cells']} | {cell(m, 'kendall_tau')} | {cell(m, 'spearman_rho')} | "
                     f"{cell(m, 'top_precision')} | {cell(m, 'regret')} | {cell(m, 'pick_percentile')} | "
                     f"{cell(band, 'kendall_tau')} | {cell(r.get('half_a'), 'kendall_tau')} / "
                     f"{cell(r.get('half_b'), 'kendall_tau')} | {'-' if secs != secs else f'{secs:.3f}'} | - |")
    return "\n".join(lines) + "\n"


def plot_ladder(path: str, rows: dict, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for method, r in rows.items():
        secs = r["seconds_per_cell"]
        if secs != secs:
            continue
        ax.scatter(max(secs, 1e-4), r["all"]["kendall_tau"], s=18)
        ax.annotate(method, (max(secs, 1e-4), r["all"]["kendall_tau"]), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("CPU-seconds per cell (1 thread)")
    ax.set_ylabel("Kendall tau against real accuracy")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def benchmark_transfer(out: str, truths: Dict[str, str], sample: int = 200, parts=("cheap", "ladder"),
                       fidelities: Sequence[str] = tuple(LADDER), ladder_cells: Optional[int] = None,
                       seeds=(0, 1), sample_seed: int = 0, methods: Sequence[str] = CHEAP,
                       progress: bool = True) -> dict:
    """Score (resumably) and tabulate; ``truths``: name -> path of a public ground truth."""
    from ..search.child import ChildConfig

    child = ChildConfig(threads=1)
    result = {}
    for name, path in truths.items():
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        records = read_truth(path)
        sample_path = os.path.join(folder, "sample.jsonl")
        if os.path.exists(sample_path):  # a resumed run scores the cells it chose first
            cells = [json.loads(line) for line in open(sample_path)]
        else:
            cells = spread_sample(records, sample, sample_seed)
            write_text(sample_path, "".join(json.dumps({k: c[k] for k in ("id", "genotype", "accuracy")}) + "\n"
                                            for c in cells))
        if "cheap" in parts:
            score_cheap(folder, cells, child, seeds, methods, progress=progress)
        if "ladder" in parts:
            score_ladder(folder, cells[:ladder_cells] if ladder_cells else cells, child, fidelities, seeds, progress)
        truth = {c["id"]: c["accuracy"] for c in cells}
        by_id = {r["id"]: r for r in records}
        extra = {}
        for c in cells:  # NASLib's own zero-cost scores, when the truth has them
            for key, value in by_id[c["id"]].get("zc", {}).items():
                extra.setdefault(f"naslib:{key}", {})[c["id"]] = value
        extra.update(_vote(folder))
        from ..search.ranking import COMBINATIONS

        scored = method_scores(folder)
        for combo, components in COMBINATIONS.items():  # derived from its components' files where not scored itself
            if combo not in scored and all(m in scored for m, _ in components):
                extra[combo] = {i: r["score"] for i, r in combination_scores(folder, combo, child).items()}
        if any(k.startswith("naslib:") for k in extra):  # NAS-Bench-301: the prior was fitted to these cells
            extra["prior (2-fold, other half)"] = cross_validated_prior(cells)
        rows = table(folder, truth, extra)
        result[name] = {"path": os.path.basename(path), "cells": len(cells), "methods": rows}
        write_json(os.path.join(folder, "transfer.json"), result[name])
        text = markdown(name, rows, len(cells))
        write_text(os.path.join(folder, "transfer.md"), text)
        plot_ladder(os.path.join(folder, "ladder.png"), rows, f"{name}: tau against real accuracy vs cost")
        if progress:
            print(text, flush=True)
    return result


# ------------------------------------------------------------------------------------------------
# The outcome a user sees: the pick of a search given the same CPU time

def combination_scores(folder: str, method: str, child, space: Optional[dict] = None) -> Dict[int, dict]:
    """A combination's scores computed from its components' score files (seed 0) and the reference
    scales its scorer would use: the same numbers as scoring it, without recomputing the components."""
    from ..search.ranking import COMBINATIONS, RankConfig, Scorer, on_scale

    names = [name for name, _ in COMBINATIONS[method]]
    scorer = Scorer(RankConfig(method, child, space=space))
    files = {name: _read(os.path.join(folder, "scores", f"{name}_seed0.jsonl")) for name in names}
    return {i: {"score": scorer.combine({name: on_scale(name, files[name][i]["score"]) for name in names}),
                "seconds": sum(files[name][i].get("cpu_seconds", files[name][i]["seconds"]) for name in names)}
            for i in set.intersection(*(set(f) for f in files.values()))}


def equal_time(scores: Dict[int, dict], truth: Dict[int, float], cpu_seconds: float, pool: int = 500,
               seeds: int = 3, fixed: float = 0.0) -> dict:
    """A search with ``cpu_seconds`` (workers x wall) scores as many random cells of a random pool of
    ``pool`` cells as its cost per cell allows and picks its best-scored one; the pick's true
    percentile within the pool, mean and spread over ``seeds`` pools."""
    import random
    import statistics

    ids = sorted(i for i in scores if i in truth)
    per_cell = _cost(scores, ids)
    picks, afforded = [], 0
    for seed in range(seeds):
        rng = random.Random(seed)
        members = rng.sample(ids, min(pool, len(ids)))
        afforded = int(min(len(members), max(0, cpu_seconds - fixed) // max(per_cell, 1e-9)))
        if afforded == 0:
            return {"percentile": None, "std": None, "cells": 0, "pool": len(members)}
        scored = rng.sample(members, afforded)
        pick = max(scored, key=lambda i: scores[i]["score"])
        picks.append(sum(truth[j] <= truth[pick] for j in members) / len(members))
    return {"percentile": statistics.fmean(picks), "std": statistics.pstdev(picks), "cells": afforded,
            "pool": min(pool, len(ids)), "picks": picks, "seconds_per_cell": per_cell}


def equal_time_promoted(rungs: Sequence[Dict[int, dict]], truth: Dict[int, float], cpu_seconds: float,
                        keep: float = 1 / 3, pool: int = 500, seeds: int = 3) -> dict:
    """Successive halving at equal CPU time (what ``--promote`` does): n random cells of a pool at
    rung 0, the best ``keep`` of each rung re-scored at the next, n the most the budget pays for;
    the pick (the best of the last rung) as a percentile of the pool. The pool: the cells every
    rung has a score for."""
    import math
    import random
    import statistics

    ids = sorted(set.intersection(*(set(r) for r in rungs)) & set(truth))
    costs = [_cost(r, ids) for r in rungs]

    def cost(n):
        total, m = 0.0, n
        for c in costs:
            total, m = total + m * c, max(1, math.ceil(keep * m))
        return total

    picks, n = [], 0
    for seed in range(seeds):
        rng = random.Random(seed)
        members = rng.sample(ids, min(pool, len(ids)))
        n = max((k for k in range(1, len(members) + 1) if cost(k) <= cpu_seconds), default=0)
        if n == 0:
            return {"percentile": None, "std": None, "cells": 0, "pool": len(members)}
        alive = rng.sample(members, n)
        for k, rung in enumerate(rungs):
            alive = sorted(alive, key=lambda i: -rung[i]["score"])
            if k < len(rungs) - 1:
                alive = alive[: max(1, math.ceil(keep * len(alive)))]
        picks.append(sum(truth[j] <= truth[alive[0]] for j in members) / len(members))
    return {"percentile": statistics.fmean(picks), "std": statistics.pstdev(picks), "cells": n,
            "pool": min(pool, len(ids)), "picks": picks, "seconds_per_cell": cost(n) / n}


def heldout_check(methods: Dict[str, Dict[int, dict]], truth: Dict[int, float], sample_path: str,
                  names: Sequence[str]) -> dict:
    """Each method's ranking metrics on the cells it scored outside the sample that chose the default."""
    from scipy.stats import kendalltau

    from ..search.ranking import rank_metrics

    chosen_on = {json.loads(line)["id"] for line in open(sample_path)} if os.path.exists(sample_path) else set()
    out = {}
    for m in names:
        ids = sorted(i for i in methods[m] if i in truth and i not in chosen_on)
        if len(ids) < 20:
            continue
        scores = {i: methods[m][i]["score"] for i in ids}
        metrics = rank_metrics([scores[i] for i in ids], [truth[i] for i in ids])
        order = sorted(ids, key=lambda i: -scores[i])
        band = [i for i in ids if truth[i] >= BAND]
        percentile = lambda i: sum(truth[j] <= truth[i] for j in ids) / len(ids)  # noqa: E731
        band_tau = float(kendalltau([scores[i] for i in band], [truth[i] for i in band])[0]) if len(band) >= 3 else float("nan")
        out[m] = {**metrics, "band_tau": band_tau,
                  "top5": sum(map(percentile, order[:5])) / 5, "top20": sum(map(percentile, order[:20])) / 20}
    return out


PICK_METHODS = ("params", "prior", "grad_norm")
# successive halving measured at equal time: rung 0's method -> the per-child fidelity that re-scores its best third
PROMOTIONS = (("prior+gradnorm", "per-child:d16-F8-e2"), ("prior", "per-child:d16-F8-e2"),
              ("per-child:nd12-F8-e1", "per-child:nd12-F8-e2"))  # scored on the whole truth (the pool); combinations derived


def benchmark_pick(out: str, path: str, minutes=(10, 30), workers: int = 2, pool: int = 500, seeds: int = 3,
                   pool_cells: int = 600, progress: bool = True) -> dict:
    """The equal-time pick on a pool of ``pool`` cells drawn from ``pool_cells`` cells of the truth at
    ``path`` (spread over its accuracy range): ``params``, ``prior`` and ``grad_norm`` scored on all of
    them (``OUT/<name>-pool/``), the
    combinations derived from their components, the per-child ladder from ``OUT/<name>/`` (its
    pool is the cells the ladder scored, fewer than ``pool``: the table says how many)."""
    from ..search.child import ChildConfig
    from ..search.ranking import COMBINATIONS

    name = os.path.splitext(os.path.basename(path))[0].split("_")[0]
    child = ChildConfig(threads=1)
    every = read_truth(path)
    records = spread_sample(every, pool_cells, seed=1)  # the cells the cheap methods' pools are drawn from
    folder = os.path.join(out, f"{name}-pool")
    os.makedirs(folder, exist_ok=True)
    score_cheap(folder, records, child, seeds=(0,), methods=PICK_METHODS, progress=progress)
    truth = {r["id"]: r["accuracy"] for r in every}  # each method's pool: cells it has scores for
    methods = {m: by_seed[0] for m, by_seed in method_scores(folder).items()}
    for combo, parts in COMBINATIONS.items():
        if all(p in methods for p, _ in parts):
            methods[combo] = combination_scores(folder, combo, child)
    ladder = os.path.join(out, name)
    for m, by_seed in method_scores(ladder).items():
        if m.startswith(("per-child:", "sotl:")):
            methods[m] = by_seed[0]
    rows = {}
    for m, scores in methods.items():
        if len([i for i in scores if i in truth]) < 20:  # a pool of a few cells says nothing
            continue
        rows[m] = {f"{w}": equal_time(scores, truth, 60.0 * w * workers, pool, seeds) for w in minutes}
    for low, high in PROMOTIONS:
        if low in methods and high in methods:
            rows[f"{low} -> best third -> {high}"] = {
                f"{w}": equal_time_promoted((methods[low], methods[high]), truth, 60.0 * w * workers, pool=pool,
                                            seeds=seeds) for w in minutes}
    held_out = heldout_check(methods, truth, os.path.join(out, name, "sample.jsonl"), [m for m in methods if m in
                             PICK_METHODS or m in COMBINATIONS])
    result = {"truth": os.path.basename(path), "pool": pool, "workers": workers, "seeds": seeds, "methods": rows,
              "held_out": held_out}
    write_json(os.path.join(out, f"{name}-pick.json"), result)
    lines = [f"| method | CPU s / cell | " + " | ".join(f"pick percentile after {w} min x {workers} workers (std; cells scored / pool)"
                                                     for w in minutes) + " |", "|---|---|" + "---|" * len(minutes)]
    for m, r in sorted(rows.items(), key=lambda kv: -(kv[1][str(minutes[0])]["percentile"] or 0)):
        first = r[str(minutes[0])]
        lines.append(f"| {m} | {first.get('seconds_per_cell', float('nan')):.3f} | " + " | ".join(
            "-" if e["percentile"] is None else f"{100 * e['percentile']:.1f} ({100 * e['std']:.1f}; {e['cells']} / {e['pool']})"
            for e in r.values()) + " |")
    lines += ["", f"Cells that played no part in choosing the default (every scored cell outside {name}/sample.jsonl):", "",
              "| method | cells | Kendall tau | tau >= 85% | top-10% precision | top pick's percentile | mean percentile of "
              "the best 5 / 20 |", "|---|---|---|---|---|---|---|"]
    for m, r in sorted(held_out.items(), key=lambda kv: -kv[1]["kendall_tau"]):
        lines.append(f"| {m} | {r['cells']} | {r['kendall_tau']:.3f} | {r['band_tau']:.3f} | {r['top_precision']:.2f} | "
                     f"{100 * r['pick_percentile']:.1f} | {100 * r['top5']:.1f} / {100 * r['top20']:.1f} |")
    text = "\n".join(lines) + "\n"
    write_text(os.path.join(out, f"{name}-pick.md"), text)
    if progress:
        print(text, flush=True)
    return result
