"""Does the detection reward find better detection backbones? Three cells, one detector recipe.

(a) the cell a one-shot search finds with the detection reward (supernet inside Faster R-CNN,
    AP50 on the held-out split of the generated shapes set);
(b) the cell a one-shot search finds with the classification reward (digits);
(c) NASNet-A.

Each cell then trains the same Faster R-CNN (FPN, ``demo_fpn_cpu.yaml``) from scratch on shapes, at
the same size (the supernet's cells and filters), for each seed; AP50 on the shapes validation
split, with the mean and spread over seeds.
"""
from __future__ import annotations

import os
import statistics
from typing import Dict, Sequence

from ..io import write_json


def train_detector_on_shapes(genotype_path: str, num_cells: int, filters: int, shapes: dict, iters: int,
                             out: str, seed: int, batch: int = 4, size: int = 128) -> float:
    """AP50 of Faster R-CNN (FPN) with this cell, trained from scratch (``train_net.py``'s trainer)."""
    from .. import genotypes
    from ..detection.recipes import DETECTION_CONFIG, detection_opts
    from ..detection.config import get_config
    from ..detection.evaluation import results_by_dataset
    from ..detection.train import Trainer
    from ..modeling import format_arch

    arch = format_arch(genotypes.get(genotype_path), num_cells, filters)
    cfg = get_config(DETECTION_CONFIG, detection_opts(genotype_path, arch, "", shapes["train"], shapes["val"], iters, out,
                                                      size, batch, seed, checkpoints=1) + [
        # from scratch, as the scratch configs: a normalised FPN, and the gradient clipping the supernet had
        "MODEL.FPN.NORM", "BN", "SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "norm",
        "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", "5.0"])
    cfg.freeze()
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    results = results_by_dataset(cfg, trainer.train())[shapes["val"]]["bbox"]
    ap50 = float(results["AP50"])
    return 0.0 if ap50 != ap50 else ap50  # COCOeval's NaN: nothing detected


def benchmark_oneshot_detection(out: str = "runs/benchmark_oneshot_detection", seeds: Sequence[int] = (0, 1),
                                budget: int = 24, supernet_epochs: int = 4, detection_iters: int = 600,
                                quick: bool = False, log=print) -> dict:
    import logging

    from ..detection.shapes import generate
    from ..detection.recipes import DETECTION_CHILD
    from ..search.child import ChildConfig
    from ..search.oneshot import OneShotConfig
    from ..search.runner import SearchConfig, run_search

    logging.getLogger("detectron2").setLevel(logging.WARNING)
    logging.getLogger("fvcore").setLevel(logging.WARNING)
    if quick:
        seeds, budget, supernet_epochs, detection_iters = (0,), 2, 1, 4
    num_cells, filters = 3, 8
    capped = dict(max_train_batches=3) if quick else {}
    det_child = ChildConfig(dataset="shapes", **{**DETECTION_CHILD, "num_cells": num_cells}, num_conv_filters=filters,
                            **capped)
    cls_child = ChildConfig(num_cells=num_cells, num_conv_filters=filters, **capped)
    cells: Dict[str, str] = {}
    for name, task, child in (("detection reward", "detection", det_child), ("classification reward", "classification", cls_child)):
        folder = os.path.join(out, task.split()[0] + "_search")
        resume = os.path.exists(os.path.join(folder, "state.pt"))
        run_search(SearchConfig(strategy="evolution", method="oneshot", task=task, budget=budget, workers=1,
                                out=folder, child=child, oneshot=OneShotConfig(epochs=supernet_epochs),
                                strategy_options={"population_size": max(2, budget // 3), "sample_size": 2},
                                progress=not quick), resume=resume)
        cells[name] = os.path.join(folder, "genotype.json")
    cells["NASNet-A"] = "nasnet_a"
    shapes = generate(os.path.join(out, "shapes"), 400, 80, 128, 0)
    ap50: Dict[str, list] = {name: [] for name in cells}
    for seed in seeds:
        for name, genotype in cells.items():
            folder = os.path.join(out, "detectors", f"{name.replace(' ', '_')}_seed{seed}")
            ap50[name].append(train_detector_on_shapes(genotype, num_cells, filters, shapes, detection_iters, folder, seed))
            log(f"  {name}, seed {seed}: AP50 {ap50[name][-1]:.1f}")
    result = {"seeds": list(seeds), "budget": budget, "supernet_epochs": supernet_epochs,
              "detection_iters": detection_iters, "cells": cells, "ap50": ap50,
              "mean": {k: statistics.mean(v) for k, v in ap50.items()},
              "spread": {k: (max(v) - min(v)) for k, v in ap50.items()}}
    write_json(os.path.join(out, "oneshot_detection.json"), result)
    log(f"shapes AP50 after {detection_iters} iterations from scratch, {len(seeds)} seed(s) (mean, max-min):")
    for name in cells:
        log(f"  {name:<22} {result['mean'][name]:5.1f}  ({result['spread'][name]:.1f})")
    return result
