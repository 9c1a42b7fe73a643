"""``prior``: a reward without data or training, a linear model of a cell's op mix and wiring fitted
to public full-scale CIFAR-10 accuracies (NAS-Bench-301).

Why: on cells trained at full scale by others, the op mix of a cell predicts its accuracy better
than the search's short proxy trainings do (``docs/search.md``, "Ranking against real
accuracies"). On NAS-Bench-301's 500 cells of NASLib's zero-cost file, normal cells with more
separable convs and fewer pools are better; the same holds for the LaMCTS cells (a different
space: 7 blocks, one cell for both roles, 200-epoch training) that the model was never fitted on.

Features (:func:`features`), per cell (normal, reduction): the share of the cell's op slots in
each op group of :data:`GROUPS`, and the share of op inputs that read the two cell inputs. An op
outside every group (a user's op) counts in no group, so the model scores it as neutral. Ops of
the paper's space that NAS-Bench-301 does not hold (plain convs, 5x5 / 7x7 pools, 7x7 separable
convs) are scored as the group they belong to; plain convs form a group NAS-Bench-301 never
shows, so its weight is zero.

The shipped coefficients (``prior_nb301.json``) are a ridge regression on standardised features,
fitted by ``tools/benchmark.py transfer --fit-prior NB301.json`` to NASLib's
``zc_nasbench301.json`` (automl/NASLib, Apache-2.0; Siems et al. 2020, "NAS-Bench-301 and the
case for surrogate benchmarks"); nothing else was fitted.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Dict, List, Sequence

from .. import genotypes
from ..errors import SearchError

GROUPS: Dict[str, tuple] = {
    "pool": ("max_pool_3x3", "avg_pool_3x3", "max_pool_5x5", "max_pool_7x7"),
    "sep_conv": ("sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7"),
    "dil_conv": ("dil_conv_3x3", "dil_conv_5x5"),
    "conv": ("conv_1x1", "conv_3x3", "conv_1x3_3x1", "conv_1x7_7x1"),
    "identity": ("identity",),
}
_GROUP_OF = {op: group for group, ops in GROUPS.items() for op in ops}
FEATURES: List[str] = [f"{cell}.{name}" for cell in ("normal", "reduction")
                       for name in (*GROUPS, "reads_cell_inputs")]
MODEL_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prior_nb301.json")


def cell_features(cell: genotypes.Cell) -> List[float]:
    ops = [op for block in cell.blocks for op in block.ops]
    inputs = [i for block in cell.blocks for i in block.inputs]
    shares = [sum(_GROUP_OF.get(op) == group for op in ops) / len(ops) for group in GROUPS]
    return shares + [sum(i < 2 for i in inputs) / len(inputs)]


def features(genotype: genotypes.Genotype) -> List[float]:
    """The model's inputs, in the order of :data:`FEATURES`."""
    return cell_features(genotype.normal) + cell_features(genotype.reduction)


def fit(feature_rows: Sequence[Sequence[float]], accuracies: Sequence[float], alpha: float = 1.0,
        source: str = "") -> dict:
    """Ridge regression on standardised features; returns the model as :func:`score` reads it."""
    import numpy as np

    x, y = np.asarray(feature_rows, dtype=float), np.asarray(accuracies, dtype=float)
    if x.ndim != 2 or x.shape[1] != len(FEATURES) or len(x) != len(y) or len(y) < len(FEATURES):
        raise SearchError(f"prior: need at least {len(FEATURES)} rows of {len(FEATURES)} features and one accuracy each")
    mean, scale = x.mean(0), x.std(0)
    scale[scale == 0] = 1.0  # a feature the data never varies (plain convs in NB301) gets weight 0
    z = (x - mean) / scale
    w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return {"features": FEATURES, "mean": mean.tolist(), "scale": scale.tolist(), "weights": w.tolist(),
            "intercept": float(y.mean()), "alpha": alpha, "cells": len(y), "source": source}


@lru_cache(maxsize=4)
def load(path: str = MODEL_PATH) -> dict:
    with open(path) as f:
        model = json.load(f)
    if model.get("features") != FEATURES:
        raise SearchError(f"{path}: a prior model of other features ({model.get('features')}); refit it with "
                          f"tools/benchmark.py transfer --fit-prior")
    return model


def score(genotype: genotypes.Genotype, model: dict = None) -> float:
    """The model's predicted accuracy (percent) of ``genotype``; larger is better."""
    model = model or load()
    return model["intercept"] + sum(w * (v - m) / s for v, m, s, w in
                                    zip(features(genotype), model["mean"], model["scale"], model["weights"]))
