"""The latency model against measured latency (``tools/benchmark.py latency``): for the published
cells and ``cells`` random cells of the space at one N@F and input size, the sum-of-parts prediction
(:mod:`nasnet_det.search.latency`) beside the measured end-to-end forward, on this device, in one
run. Reports the mean / max relative error and Kendall tau of the raw sum, and of a linear correction
(measured = a * sum + b * parts + c) fitted on half the cells and scored on the other half.

Resumable: each cell's (predicted, measured twice) record is a line of ``OUT/latency_pairs.jsonl``; the
table is ``OUT/table.jsonl``; ``OUT/latency.json`` holds the statistics.
"""
from __future__ import annotations

import os
import time
from typing import List, Tuple

import numpy as np
import torch

from .. import genotypes
from ..io import write_json
from ..search import latency as lat
from ..search.trials import TrialLog
from .oneshot import kendall_tau


def _stats(pred: List[float], meas: List[float]) -> dict:
    err = [abs(p - m) / m for p, m in zip(pred, meas)]
    return {"mean_rel_error": float(np.mean(err)), "max_rel_error": float(np.max(err)),
            "kendall_tau": kendall_tau(pred, meas), "n": len(pred)}


def fit_correction(rows: List[dict]) -> np.ndarray:
    """Least squares of measured on [predicted sum, number of parts, 1]."""
    x = np.array([[r["predicted_ms"], r["parts"], 1.0] for r in rows])
    y = np.array([r["measured_ms"] for r in rows])
    return np.linalg.lstsq(x, y, rcond=None)[0]


def corrected(coef: np.ndarray, row: dict) -> float:
    return float(coef @ np.array([row["predicted_ms"], row["parts"], 1.0]))


def benchmark_latency(out: str, arch: str = "4@1056", size: Tuple[int, int] = (224, 224), cells: int = 20,
                      device: str = "cpu", seed: int = 0, repeats: int = 15, network: str = "classifier", log=print) -> dict:
    lat.load_network(network)  # a bad network is one line before anything is timed
    os.makedirs(out, exist_ok=True)
    start = time.time()
    table = lat.LatencyTable(os.path.join(out, "table.jsonl"), device, size, 1, arch, repeats=repeats, network=network)
    pairs = TrialLog(os.path.join(out, "latency_pairs.jsonl"))
    done = {r["cell"]: r for r in pairs.read()}
    pool = [genotypes.get(n) for n in genotypes.names()] + lat.space_cells(cells, seed)
    for g in pool:
        if g.name in done:
            continue
        parts = lat.network_parts(g, arch, size, 1, device, network)
        t0 = time.time()
        predicted = table.predict_parts(parts)
        table_s = time.time() - t0
        measured = lat.measure_forward(g, arch, size, device, repeats=repeats, network=network)
        row = {"cell": g.name, "predicted_ms": predicted, "first_ms": measured, "parts": len(parts),
               "table_s": table_s}
        pairs.append(row)
        done[g.name] = row
        log(f"  {g.name:<16} predicted {predicted:8.2f} ms  measured {measured:8.2f} ms")
    # a second measurement of every network, after all the first ones: the test-retest agreement of
    # the measurement itself, the ceiling of any predictor on this machine
    for g in pool:
        row = done[g.name]
        if "again_ms" not in row:
            row["again_ms"] = lat.measure_forward(g, arch, size, device, repeats=repeats, network=network)
            pairs.append(row)  # the later line of a cell wins when read back
    rows = [done[g.name] for g in pool]
    for r in rows:
        r["measured_ms"] = (r["first_ms"] + r["again_ms"]) / 2
    retest = _stats([r["again_ms"] for r in rows], [r["first_ms"] for r in rows])
    raw = _stats([r["predicted_ms"] for r in rows], [r["measured_ms"] for r in rows])
    fit_rows, test_rows = rows[0::2], rows[1::2]
    coef = fit_correction(fit_rows)
    held = _stats([corrected(coef, r) for r in test_rows], [r["measured_ms"] for r in test_rows])
    result = {"network": network, "arch": arch, "size": list(size), "device": device, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "cells": len(rows), "raw_sum": raw, "measurement_retest": retest,
              "corrected_held_out": held, "correction": {"a": coef[0], "b_per_part_ms": coef[1], "c_ms": coef[2]},
              "table_entries": len(table.entries), "seconds": time.time() - start, "rows": rows}
    write_json(os.path.join(out, "latency.json"), result)
    log(f"measurement test-retest: mean difference {retest['mean_rel_error']:.1%}, max {retest['max_rel_error']:.1%}, "
        f"Kendall tau {retest['kendall_tau']:.3f}")
    log(f"raw sum vs the mean of both measurements: mean error {raw['mean_rel_error']:.1%}, max {raw['max_rel_error']:.1%}, Kendall tau "
        f"{raw['kendall_tau']:.3f} ({raw['n']} cells)")
    log(f"corrected (fitted on {len(fit_rows)}, scored on {len(test_rows)}): mean error {held['mean_rel_error']:.1%}, "
        f"max {held['max_rel_error']:.1%}, Kendall tau {held['kendall_tau']:.3f}")
    return result
