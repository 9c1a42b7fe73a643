"""The detection reward of a one-shot search (DetNAS): the supernet inside Faster R-CNN.

``--method oneshot --task detection``: the supernet (:class:`~nasnet_det.search.supernet.SuperNet`,
ImageNet stem) is the bottom-up network of the FPN layout inside Detectron2's Faster R-CNN, with the
detector settings of ``demo_fpn_cpu.yaml``. It trains with the detector's losses, one sampled child
per minibatch; a child's reward is its box AP50 (or AP, ``--oneshot-metric``) on the held-out split,
divided by 100, with the inherited weights after its BN statistics are re-estimated.

Data (``--dataset``): ``shapes`` (the generated set, at ``--child-img-size``), ``voc:ROOT`` (its
``train`` and ``val`` splits) or ``coco:DIR:JSON`` (every fifth image held out). The winner trains
like any genotype: ``train_net.py ... MODEL.NASNET.GENOTYPE OUT/genotype.json MODEL.NASNET.ARCH N@F``
(the report prints the ``N@F`` of the searched size).
"""
from __future__ import annotations

import contextlib
import io
import os
import time
from typing import Dict, List, Tuple

import torch
from detectron2.data import DatasetCatalog, build_detection_test_loader, build_detection_train_loader
from detectron2.data.samplers import TrainingSampler
from detectron2.evaluation import inference_on_dataset
from detectron2.modeling import Backbone, build_model
from detectron2.utils.events import EventStorage

from .. import genotypes
from ..data.specs import format_spec, parse_spec
from ..errors import SearchError
from ..io import write_text
from ..modeling.layout import NASNetConfig, feature_taps
from ..search.child import child_options
from ..search.config import search_config
from ..search.oneshot import SupernetTrainer, child_params, load_weights, load_when_changed
from ..search.supernet import parse_recipe, SuperNet, recalibrate_batch_norm
from .backbone import build_fpn
from .config import get_config
from .datasets import CheckedDatasetMapper, ensure_registered, register_image_ids
from .evaluation import ImageIdCOCOEvaluator, has_compiled_ops
from .recipes import DETECTION_CHILD, DETECTION_CONFIG, SHAPES

METRICS = ("AP50", "AP")
CHILD_DEFAULTS = DETECTION_CHILD


def check(cfg) -> None:
    """The settings a detection search can run (the task table's ``check``)."""
    if cfg.method != "oneshot":
        raise SearchError("--task detection needs --method oneshot (a detector per child is beyond any budget "
                          "this search runs at)")
    if cfg.child.dataset != "shapes" and parse_spec(cfg.child.dataset).kind not in ("voc", "coco"):
        raise SearchError(f"--task detection takes --dataset shapes, voc:ROOT or coco:DIR:JSON, "
                          f"got {cfg.child.dataset!r}")
    if cfg.child.img_size is None or cfg.child.img_size < 32:
        raise SearchError(f"--task detection needs --child-img-size of at least 32, got {cfg.child.img_size}")
    if cfg.oneshot.metric not in METRICS:
        raise SearchError(f"oneshot metric must be one of {', '.join(METRICS)}, got {cfg.oneshot.metric!r}")


class SupernetBackbone(Backbone):
    """The supernet's taps at strides 4-32 (widest layout) for FPN; ``genotype`` picks the path."""

    def __init__(self, supernet: SuperNet, out_features=("stride4", "stride8", "stride16", "stride32")):
        super().__init__()
        self.supernet = supernet
        self.genotype = None  # set before every forward
        taps = {f"stride{t['reduction']}": t for t in feature_taps(supernet.plan, supernet.cfg)}
        self._out_features = list(out_features)
        self._cells = {name: taps[name]["cell"] for name in out_features}
        self._out_feature_channels = {n: taps[n]["num_chs"] for n in out_features}
        self._out_feature_strides = {n: taps[n]["reduction"] for n in out_features}

    @property
    def size_divisibility(self) -> int:
        return max(self._out_feature_strides.values())

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        if self.genotype is None:
            raise SearchError("set SupernetBackbone.genotype to the child to run before calling it")
        taps, _ = self.supernet.forward_taps(x, self.genotype, self._cells.values())
        return {name: taps[cell] for name, cell in self._cells.items()}


def detection_splits(dataset: str, out: str, img_size: int, seed: int) -> Tuple[str, str]:
    """(train, held-out) Detectron2 dataset names of ``--dataset``, registered."""
    if dataset == "shapes":
        from .shapes import generate

        names = generate(os.path.join(out, "shapes"), SHAPES["train"], SHAPES["val"], img_size, seed)
        train, val = names["train"], names["val"]
    else:
        spec = parse_spec(dataset)
        if spec.kind == "voc":
            train, val = format_spec("voc", spec.args[0], "train"), format_spec("voc", spec.args[0], "val")
        elif spec.kind == "coco":
            ensure_registered(dataset)
            ids = sorted(d["image_id"] for d in DatasetCatalog.get(dataset))
            if len(ids) < 2:
                raise SearchError(f"{dataset} has {len(ids)} image(s): a detection search needs a training and a held-out split")
            ids_file = os.path.join(out, "heldout_image_ids.txt")
            write_text(ids_file, "".join(f"{i}\n" for i in ids[::5]))
            train, val = f"{dataset}@train", format_spec("ids", dataset, ids_file)
            if train not in DatasetCatalog.list():
                register_image_ids(train, dataset, ids_file, exclude=True)
        else:
            raise SearchError(f"--task detection takes --dataset shapes, voc:ROOT or coco:DIR:JSON, got {dataset!r}")
    ensure_registered(train)
    ensure_registered(val, _classes(train))
    return train, val


def _classes(name: str):
    from detectron2.data import MetadataCatalog

    return MetadataCatalog.get(name).get("thing_classes", None)


def detector_config(settings: dict):
    """The Detectron2 config of the search's detector (the same in the driver and the workers)."""
    child = search_config(settings).child
    train, val = detection_splits(child.dataset, settings["out"], child.img_size, child.seed)
    size = str(child.img_size)
    cfg = get_config(DETECTION_CONFIG, [
        "DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", f"('{val}',)",
        "INPUT.MIN_SIZE_TRAIN", f"({size},)", "INPUT.MAX_SIZE_TRAIN", size, "INPUT.MIN_SIZE_TEST", size,
        "INPUT.MAX_SIZE_TEST", size, "SOLVER.IMS_PER_BATCH", str(child.batch_size), "SEED", str(child.seed),
        # the detector's heads are built around a placeholder NASNet, whose bottom-up is then replaced
        "MODEL.NASNET.GENOTYPE", "nasnet_a", "MODEL.NASNET.ARCH", "1@96",
        "OUTPUT_DIR", os.path.join(settings["out"], "detector")])
    cfg.freeze()
    return cfg


def build_supernet_detector(settings: dict):
    """Faster R-CNN (FPN) whose bottom-up network is the supernet; returns (model, its config)."""
    cfg = detector_config(settings)
    search = search_config(settings)
    # the children's size with the ImageNet stem, as every detection backbone has
    options = {**child_options(search.child, 0, search.child.img_size), "stem": "imagenet"}
    supernet = SuperNet(search.space, NASNetConfig(**options), share_inputs=search.oneshot.share_inputs,
                        recipe=parse_recipe(search.oneshot.recipe))
    model = build_model(cfg)
    model.backbone = build_fpn(cfg, SupernetBackbone(supernet))
    return model, cfg


def _bottom_up(model) -> SupernetBackbone:
    return model.backbone.bottom_up


class DetectionSupernet(SupernetTrainer):
    """The supernet trained with Faster R-CNN's losses (DetNAS)."""

    def build(self):
        model, self.det_cfg = build_supernet_detector(self.cfg.to_dict())
        self.train_name = self.det_cfg.DATASETS.TRAIN[0]
        self.train_set = DatasetCatalog.get(self.train_name)
        return model

    def batches(self, epoch: int):
        return build_detection_train_loader(  # endless: the trainer takes one epoch of it
            dataset=self.train_set, mapper=CheckedDatasetMapper(self.det_cfg, is_train=True),
            sampler=TrainingSampler(len(self.train_set), shuffle=True, seed=self.epoch_seed(epoch)),
            total_batch_size=self.child.batch_size, aspect_ratio_grouping=False, num_workers=0)

    def loss(self, batch, genotype: genotypes.Genotype) -> torch.Tensor:
        _bottom_up(self.net).genotype = genotype
        with EventStorage(self.step):  # Detectron2's heads log their statistics there
            return sum(self.model(batch).values())


# ------------------------------------------------------------------------------------------------
# Scoring (in the search's workers)

def _scoring_state(settings: dict):
    """(detector, its config, calibration batches, held-out loader), as ``supernet.pt`` now is."""
    search = search_config(settings)

    def build(previous):
        model, cfg = previous[:2] if previous is not None else build_supernet_detector(settings)
        load_weights(settings, model)
        batch = search.child.batch_size
        train_dicts = DatasetCatalog.get(cfg.DATASETS.TRAIN[0])[: search.oneshot.calibration_batches * batch]
        mapper = CheckedDatasetMapper(cfg, is_train=True)
        calibration = [[mapper(d) for d in train_dicts[i: i + batch]] for i in range(0, len(train_dicts), batch)]
        loader = build_detection_test_loader(cfg, cfg.DATASETS.TEST[0], mapper=CheckedDatasetMapper(cfg, is_train=False))
        return model, cfg, calibration, loader

    return load_when_changed(settings, build)


@torch.no_grad()
def score_detection_child(model, cfg, genotype: genotypes.Genotype, calibration: List[list], loader) -> Dict[str, float]:
    """Box AP of ``genotype`` on the held-out split with the supernet's weights (BN re-estimated)."""
    bottom_up = _bottom_up(model)
    bottom_up.genotype = genotype
    recalibrate_batch_norm(bottom_up, calibration,
                           lambda module, batch: module(model.preprocess_image(batch).tensor))
    model.eval()
    evaluator = ImageIdCOCOEvaluator(cfg.DATASETS.TEST[0], tasks=("bbox",), output_dir=None,
                                     use_fast_impl=has_compiled_ops())
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables per child
        results = inference_on_dataset(model, loader, evaluator)
    return {k: float(v) for k, v in results["bbox"].items() if k in ("AP", "AP50", "AP75")}


def detection_evaluator(genotype_dict: dict, settings: dict) -> dict:
    start = time.perf_counter()
    model, cfg, calibration, loader = _scoring_state(settings)
    genotype = genotypes.Genotype.from_dict(genotype_dict)
    metrics = score_detection_child(model, cfg, genotype, calibration, loader)
    value = metrics[search_config(settings).oneshot.metric]
    reward = 0.0 if value != value else value / 100.0  # COCOeval's NaN: no detections at all
    return {"reward": reward, **metrics, "params": child_params(_bottom_up(model).supernet, genotype),
            "seconds": time.perf_counter() - start}


# the task table's entries (nasnet_det.search.tasks)
SUPERNET = DetectionSupernet
evaluate = detection_evaluator
