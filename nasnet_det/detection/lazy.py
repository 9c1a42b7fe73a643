"""What Detectron2's LazyConfig files (``configs/*.py``, ``configs/common/``) call besides
Detectron2's own classes: the NASNet parts (:func:`~.backbone.nasnet_backbone`,
:func:`~.backbone.nasnet_second_stage`, the channel counts the heads need), datasets that may be
given by path (``voc:ROOT[:SPLIT]``, ``coco:IMAGES:JSON``, ``NAME@IDS.txt``), our evaluator, and SGD
with the gradient clipping the paper layout trains with.

The YAML builders go through the same functions, so a ``.py`` config and its ``.yaml`` twin build
one model. Loading a ``.py`` config runs it: LazyConfig files are code, trust them as such
(docs/security.md).
"""
from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence, Union

import torch
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog, get_detection_dataset_dicts
from detectron2.solver.build import maybe_add_gradient_clipping

from ..modeling.layout import cell_plan, resolve, split_point
from .backbone import _headless, nasnet_backbone, nasnet_second_stage, nasnet_width
from .datasets import ensure_registered
from .evaluation import ImageIdCOCOEvaluator, has_compiled_ops, safe_name

__all__ = ["nasnet_backbone", "nasnet_second_stage", "nasnet_width", "pair_channels", "dataset_dicts",
           "coco_evaluator", "sgd"]

Names = Union[str, Sequence[str]]


def pair_channels(net: Mapping) -> int:
    """Channels of the paper layout's ``pair16`` map for ``net`` (the RPN head's input)."""
    genotype, layout = resolve(**_headless(net))
    plan = {spec.name: spec for spec in cell_plan(layout, genotype)}
    names = list(plan)
    last = names.index(split_point(genotype, layout))
    return sum(plan[n].out_channels for n in names[last - 1:last + 1])


def _names(names: Names) -> list:
    return [names] if isinstance(names, str) else list(names)


def _register(names: Names, classes_from: Optional[Names] = None) -> list:
    classes = None
    if classes_from:
        first = ensure_registered(_names(classes_from)[0])
        classes = MetadataCatalog.get(first).get("thing_classes", None)
    return [ensure_registered(n, classes) for n in _names(names)]


def dataset_dicts(names: Names, filter_empty: bool = True, classes_from: Optional[Names] = None, **kwargs) -> list:
    """Detectron2's ``get_detection_dataset_dicts`` for registered names and path forms alike.
    ``classes_from``: the training set whose class list (and order) a VOC test set must use."""
    return get_detection_dataset_dicts(_register(names, classes_from), filter_empty=filter_empty, **kwargs)


def coco_evaluator(dataset_name: Names, output_dir: Optional[str] = None, classes_from: Optional[Names] = None,
                   tasks: Sequence[str] = ("bbox",)) -> ImageIdCOCOEvaluator:
    """COCO box AP on ``dataset_name`` (any form), its files under ``output_dir/inference/<safe name>``
    as our train_net writes them; ``@ids`` views score only their images."""
    name = _register(dataset_name, classes_from)[0]
    folder = os.path.join(output_dir, "inference", safe_name(name)) if output_dir else None
    return ImageIdCOCOEvaluator(name, tasks=tuple(tasks), output_dir=folder, use_fast_impl=has_compiled_ops())


def sgd(params, lr: float, momentum: float = 0.9, weight_decay: float = 1e-4, clip_type: Optional[str] = None,
        clip_value: float = 1.0, norm_type: float = 2.0) -> torch.optim.Optimizer:
    """``torch.optim.SGD``, with Detectron2's gradient clipping (``SOLVER.CLIP_GRADIENTS``'s meaning:
    ``clip_type`` "value" or "norm", per parameter) when ``clip_type`` is given."""
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if clip_type is None:
        return optimizer
    clip = CfgNode({"SOLVER": {"CLIP_GRADIENTS": {"ENABLED": True, "CLIP_TYPE": clip_type, "CLIP_VALUE": clip_value,
                                                  "NORM_TYPE": norm_type}}})
    return maybe_add_gradient_clipping(clip, optimizer)
