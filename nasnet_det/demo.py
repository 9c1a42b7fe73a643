"""The main job on its embedded default: search -> pretrain -> detect -> evaluate, on any CPU.

1. Search a cell with ``ppo`` and the search's default reward, ``prior+gradnorm`` (a model of public
   CIFAR-10 accuracies and a one-batch gradient norm, no training: ``docs/search.md``), 200 children
   on 2 local workers; the searched cell's percentile among random cells of the space under that
   reward goes to the report.
2. Pretrain a small NASNet of that cell on ``digits``.
3. Train Faster R-CNN (FPN layout) with that backbone on a generated shapes set (COCO JSON,
   registered through ``coco:``), and on the raccoon photos shipped with the package.
4. Evaluate with COCOEvaluator; write everything into one run folder.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Optional

from . import genotypes
from .errors import ConfigError, UserError, require_ints
from .io import atomic_path, refuse_file_as_folder, write_json, write_text
from .modeling import format_arch
from .detection.recipes import DETECTION_CONFIG, SHAPES, detection_opts
from .search.child import ChildConfig

logger = logging.getLogger("nasnet_det.demo")

# 200 real photos with VOC boxes, shipped inside the package (data/raccoon/README.md: source, licence)
DEFAULT_RACCOON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "raccoon")


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    seed: int = 0
    # 1. search
    search_budget: int = 200
    search_workers: int = 2
    # the search's default reward (docs/search.md: the best measured against public CIFAR-10 accuracies)
    search_method: str = "prior+gradnorm"
    child: ChildConfig = field(default_factory=ChildConfig)  # per-child's settings, where that method is chosen
    # the paper's controller updates every 20 children at lr 3.5e-4; a 200-child search needs
    # smaller batches and a larger step for the controller to move
    ppo_options: dict = field(default_factory=lambda: {"batch_size": 10, "lr": 0.002})
    # 2. pretraining (ImageNet stem, so the network transfers to detection)
    num_conv_filters: int = 8
    pretrain_epochs: int = 3
    # 3. detection
    shapes_train: int = SHAPES["train"]
    shapes_val: int = SHAPES["val"]
    shapes_size: int = SHAPES["size"]
    detection_iters: int = 1000
    detection_batch: int = 4
    raccoon: Optional[str] = DEFAULT_RACCOON  # None or a missing folder: skipped
    raccoon_iters: int = 200
    progress: bool = True
    # continue an interrupted demo in the same folder: the search replays its trials, pretraining
    # and detection continue from their last checkpoints, finished stages are not redone
    resume: bool = False

    def __post_init__(self):  # before any stage runs or any earlier result is cleared
        require_ints(self, dict(search_budget=1, search_workers=1, pretrain_epochs=1, detection_iters=1, raccoon_iters=0,
                                num_conv_filters=4, shapes_train=1, shapes_val=1, shapes_size=32, detection_batch=1),
                     ConfigError, "demo ")


def _stage(title: str):
    logger.info("=" * 20 + f" {title}")
    print(f"\n==== {title}", flush=True)


def _train_detector(opts, resume: bool):
    from .detection.config import get_config
    from .detection.evaluation import results_by_dataset
    from .detection.train import Trainer

    det_cfg = get_config(DETECTION_CONFIG, opts)
    det_cfg.freeze()
    # the whole config, so that this stage can be rerun: train_net.py --config-file OUT/config.yaml
    write_text(os.path.join(det_cfg.OUTPUT_DIR, "config.yaml"), det_cfg.dump())
    trainer = Trainer(det_cfg)
    trainer.resume_or_load(resume=resume)
    results = trainer.train()
    return det_cfg, trainer.model, results_by_dataset(det_cfg, results)[det_cfg.DATASETS.TEST[0]]["bbox"]


def draw_detections(det_cfg, model, dataset: str, path: str, count: int = 6, threshold: float = 0.5) -> str:
    """A grid of validation images with predicted boxes, drawn by Detectron2's Visualizer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.detection_utils import read_image
    from detectron2.utils.visualizer import Visualizer

    dicts = DatasetCatalog.get(dataset)[:count]
    metadata = MetadataCatalog.get(dataset)
    model.eval()
    cols = 3
    rows = (len(dicts) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), dpi=100)
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, d in zip(np.ravel(axes), dicts):
        image = read_image(d["file_name"], format="RGB")
        with torch.no_grad():
            tensor = torch.as_tensor(image.transpose(2, 0, 1).astype("float32"))
            instances = model([{"image": tensor, "height": image.shape[0], "width": image.shape[1]}])[0]["instances"]
        instances = instances[instances.scores > threshold].to("cpu")
        drawn = Visualizer(image, metadata, scale=2.0).draw_instance_predictions(instances).get_image()
        ax.imshow(drawn)
        ax.set_title(os.path.basename(d["file_name"]), fontsize=8)
    fig.suptitle(f"predictions (score > {threshold})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def _raccoon_voc(cfg: DemoConfig) -> Optional[tuple]:
    """A VOC view of the raccoon photos with train/val splits (symlinks, nothing copied)."""
    if not cfg.raccoon or not os.path.isdir(cfg.raccoon):
        return None
    root = os.path.join(cfg.out, "raccoon_voc")
    for name in ("annotations", "images"):
        link = os.path.join(root, name)
        if not os.path.exists(link):
            os.makedirs(root, exist_ok=True)
            os.symlink(os.path.join(cfg.raccoon, name), link)
    ids = sorted((f[:-4] for f in os.listdir(os.path.join(cfg.raccoon, "annotations")) if f.endswith(".xml")),
                 key=lambda s: int("".join(c for c in s if c.isdigit()) or 0))
    split_dir = os.path.join(root, "ImageSets", "Main")
    os.makedirs(split_dir, exist_ok=True)
    cut = int(len(ids) * 0.8)
    for split, part in (("train", ids[:cut]), ("val", ids[cut:])):
        write_text(os.path.join(split_dir, f"{split}.txt"), "\n".join(part) + "\n")
    return f"voc:{root}:train", f"voc:{root}:val"


def _bbox_table(bbox: dict) -> str:
    keys = ["AP", "AP50", "AP75", "APs", "APm", "APl"]
    return ("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n| "
            + " | ".join(f"{bbox.get(k, float('nan')):.1f}" for k in keys) + " |")


# what a demo run writes into --out (a second run without --resume is refused rather than delete them)
STAGE_FOLDERS = ("search", "pretrain", "shapes", "detection_shapes", "detection_raccoon")


def run_demo(cfg: DemoConfig) -> dict:
    from .detection.shapes import generate
    from .pretrain import PretrainConfig, train as pretrain
    from .search.runner import SearchConfig, run_search
    from .viz import draw_cell

    start = time.time()
    refuse_file_as_folder(cfg.out, "--out")
    earlier = [n for n in STAGE_FOLDERS if os.path.exists(os.path.join(cfg.out, n))]
    if earlier and not cfg.resume:  # never delete a run (or files kept beside it) without being asked
        raise UserError(f"{cfg.out} already holds a demo run ({', '.join(earlier)}): --resume continues it, "
                        f"--out DIR starts another beside it")
    if cfg.resume and not earlier:
        raise UserError(f"nothing to resume: {cfg.out} holds no demo run; run without --resume to start one")
    os.makedirs(cfg.out, exist_ok=True)
    timings = {}

    _stage(f"1/4 search: ppo, reward {cfg.search_method}, {cfg.search_budget} children, {cfg.search_workers} workers")
    t = time.time()
    search_dir = os.path.join(cfg.out, "search")
    done = run_search(SearchConfig(strategy="ppo", method=cfg.search_method, budget=cfg.search_budget, workers=cfg.search_workers,
                                   out=search_dir, seed=cfg.seed, child=cfg.child, progress=cfg.progress,
                                   strategy_options=dict(cfg.ppo_options)),
                      resume=cfg.resume and os.path.exists(search_dir))
    for name in ("genotype.json", "search_curve.png"):
        shutil.copyfile(os.path.join(search_dir, name), os.path.join(cfg.out, name))
    genotype_path = os.path.join(cfg.out, "genotype.json")
    genotype = genotypes.get(genotype_path)
    for cell in ("normal", "reduction"):
        draw_cell(getattr(genotype, cell), os.path.join(cfg.out, f"cell_{cell}.png"), f"searched {cell} cell")
    search_rank = percentile_among_random(genotype, cfg.search_method, cfg.child)
    write_json(os.path.join(cfg.out, "search_rank.json"), search_rank)
    timings["search"] = time.time() - t

    arch = format_arch(genotype, 3, cfg.num_conv_filters)  # one normal cell per stage
    _stage(f"2/4 pretrain: {genotype.name} {arch} on digits, {cfg.pretrain_epochs} epochs")
    t = time.time()
    pretrain_dir = os.path.join(cfg.out, "pretrain")
    pretrain_metrics = pretrain(PretrainConfig(genotype=genotype_path, arch=arch, stem="imagenet", stem_multiplier=1.0,
                                               skip_reduction_layer_input=False, data="digits", img_size=32,
                                               epochs=cfg.pretrain_epochs, workers=0, seed=cfg.seed, out=pretrain_dir,
                                               progress=cfg.progress),
                                resume=cfg.resume and os.path.exists(os.path.join(pretrain_dir, "checkpoint.pth")))
    shutil.copyfile(os.path.join(pretrain_dir, "metrics.json"), os.path.join(cfg.out, "metrics.json"))
    weights = os.path.join(pretrain_dir, "backbone.pth")
    timings["pretrain"] = time.time() - t

    _stage(f"3/4 detection: Faster R-CNN (FPN) on generated shapes, {cfg.detection_iters} iterations")
    t = time.time()
    shapes = generate(os.path.join(cfg.out, "shapes"), cfg.shapes_train, cfg.shapes_val, cfg.shapes_size, cfg.seed)
    det_cfg, model, shapes_bbox = _train_detector(detection_opts(
        genotype_path, arch, weights, shapes["train"], shapes["val"], cfg.detection_iters,
        os.path.join(cfg.out, "detection_shapes"), cfg.shapes_size, cfg.detection_batch, cfg.seed), cfg.resume)
    draw_detections(det_cfg, model, shapes["val"], os.path.join(cfg.out, "detections.png"))
    metrics = {"shapes": {"dataset": shapes["val"], "bbox": shapes_bbox}}
    timings["detection_shapes"] = time.time() - t

    raccoon = _raccoon_voc(cfg)
    if raccoon and cfg.raccoon_iters > 0:
        _stage(f"3b/4 detection: the raccoon photos, {cfg.raccoon_iters} iterations")
        t = time.time()
        _, _, raccoon_bbox = _train_detector(detection_opts(
            genotype_path, arch, weights, raccoon[0], raccoon[1], cfg.raccoon_iters,
            os.path.join(cfg.out, "detection_raccoon"), 256, cfg.detection_batch, cfg.seed), cfg.resume)
        metrics["raccoon"] = {"dataset": raccoon[1], "bbox": raccoon_bbox}
        timings["detection_raccoon"] = time.time() - t

    _stage("4/4 evaluation")
    # the generated set's metrics are the headline: Detectron2's bbox dict, plus the others by name
    detection_metrics = {"bbox": shapes_bbox, "dataset": shapes["val"], **{k: v for k, v in metrics.items() if k != "shapes"}}
    write_json(os.path.join(cfg.out, "detection_metrics.json"), detection_metrics)
    timings["total"] = time.time() - start
    write_report(cfg, done, genotype, arch, pretrain_metrics, metrics, timings)
    for name, m in metrics.items():
        print(f"\n{name} ({m['dataset']}) box AP:\n{_bbox_table(m['bbox'])}")
    print(f"\ndemo finished in {timings['total'] / 60:.1f} min; everything is in {cfg.out}/ (report.md)")
    return {"metrics": metrics, "pretrain": pretrain_metrics, "timings": timings}


REWARD_TEXT = {"prior": "CIFAR-10 accuracy predicted from the cell's op mix by a model fitted to NAS-Bench-301",
               "prior+gradnorm": "the normal CDF of the mean z-score of that prediction and of minus the log gradient norm of the untrained child",
               "per-child": "held-out accuracy after a short child training"}


def _read_rank(out: str) -> dict:
    import json

    try:
        with open(os.path.join(out, "search_rank.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def percentile_among_random(genotype, method: str, child: ChildConfig, cells: int = 100, seed: int = 0) -> dict:
    """The share of ``cells`` random cells of the paper's space that ``genotype`` scores at least as
    well as under ``method`` (the methods without training, a second a cell at most; None for the others)."""
    import random

    from .search.ranking import RankConfig, Scorer
    from .search.space import SearchSpace

    from .search.config import proxy_methods

    if method not in proxy_methods():  # a training per random cell: not in a 7-minute demo
        return {"method": method, "percentile": None, "cells": 0}
    scorer = Scorer(RankConfig(method, child))
    space, rng = SearchSpace(), random.Random(seed)
    mine = scorer(genotype)["score"]
    scores = [scorer(space.decode(space.random(rng)))["score"] for _ in range(cells)]
    return {"method": method, "score": mine, "percentile": sum(s <= mine for s in scores) / cells, "cells": cells,
            "seed": seed}


def write_report(cfg, done, genotype, arch, pretrain_metrics, metrics, timings) -> None:
    ok = sorted((t for t in done if t["status"] == "ok"), key=lambda t: -t["reward"])
    lines = ["# nasnet_det demo", "",
             f"Search -> pretrain -> detection on a CPU in {timings['total'] / 60:.1f} minutes "
             f"({', '.join(f'{k} {v:.0f} s' for k, v in timings.items() if k != 'total')}).", "",
             "## 1. Search", "",
             f"`ppo`, reward `{cfg.search_method}`: {len(done)} children, best reward {ok[0]['reward']:.4f} "
             f"({REWARD_TEXT.get(cfg.search_method, 'the method of docs/search.md')}). See `search/report.md`."
             + (f" Under that reward the cell beats {100 * rank['percentile']:.1f}% of {rank['cells']} random cells of "
                f"the space (`search_rank.json`)." if (rank := _read_rank(cfg.out)).get("percentile") is not None else ""), "",
             f"The best cell is `genotype.json` ({genotype.name}):", "",
             "![normal cell](cell_normal.png)", "", "![reduction cell](cell_reduction.png)", "",
             "![search curve](search_curve.png)", "",
             "## 2. Pretraining", "",
             f"NASNet of the searched cell, {arch}, ImageNet stem, on digits (32 px): top-1 {pretrain_metrics['top1']:.4f}, "
             f"EMA top-1 {pretrain_metrics['ema_top1']:.4f} (`metrics.json`). The EMA weights, exported as "
             "`pretrain/backbone.pth`, initialise the detector.", "",
             "## 3. Detection (Faster R-CNN, FPN layout)", ""]
    for name, m in metrics.items():
        lines += [f"**{name}** (`{m['dataset']}`):", "", _bbox_table(m["bbox"]), ""]
    lines += ["![detections](detections.png)", "", "Config: `detection_shapes/config.yaml`.", ""]
    write_text(os.path.join(cfg.out, "report.md"), "\n".join(lines))
