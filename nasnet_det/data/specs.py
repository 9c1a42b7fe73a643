"""Datasets named by one string: the grammar every stage reads (``--data``, ``--dataset``,
``DATASETS.TRAIN`` / ``DATASETS.TEST``).

======================  ==============  ===============================================================
form                    task            what it names
======================  ==============  ===============================================================
``digits``              classification  scikit-learn's handwritten digits, shipped with the package
``noisy-digits``        classification  the digits, shifted and with Gaussian noise (harder: the ranking task)
``photo-rotation``      classification  rotation prediction on crops of the shipped raccoon photos (self-supervised)
``cifar10:PATH``        classification  the CIFAR-10 python folder (``data_batch_1..5``, ``test_batch``)
``imagefolder:PATH``    classification  ``PATH/train/<class>/*`` and ``PATH/val/<class>/*``
``coco:IMAGES:JSON``    detection       a COCO-format detection set
``voc:ROOT[:SPLIT]``    detection       a Pascal VOC layout; SPLIT names ``ImageSets/Main/SPLIT.txt``
``SPEC@IDS.txt``        detection       any detection set restricted to the image ids in the file
``NAME``                detection       a dataset registered in Detectron2 (e.g. ``coco_2017_val``)
======================  ==============  ===============================================================
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Tuple

CLASSIFICATION = ("digits", "noisy-digits", "photo-rotation", "cifar10", "imagefolder")
DETECTION = ("coco", "voc", "ids", "registered")


@dataclass(frozen=True)
class DatasetSpec:
    kind: str  # one of CLASSIFICATION or DETECTION
    args: Tuple[str, ...]  # cifar10/imagefolder: (path,); coco: (images, json); voc: (root, split or "");
    #                        ids: (base spec, ids file); registered: (name,)
    text: str

    @property
    def task(self) -> str:
        return "classification" if self.kind in CLASSIFICATION else "detection"


def parse_spec(text: str) -> DatasetSpec:
    """The form ``text`` has (see the module's table). It reads the disk in one case only: an ``@``
    that is part of an existing folder's or file's name (``voc:/data/run@2`` ) is not an id list."""
    if "@" in text:
        whole = _parse_base(text)
        paths = whole.args[:1] if whole.kind == "voc" else whole.args  # a VOC split is a name, not a path
        if whole.kind in ("voc", "coco") and any("@" in p for p in paths) and os.path.exists(whole.args[0]) and (
                whole.kind == "voc" or os.path.isfile(whole.args[1])):
            return whole
        base, ids_file = text.rsplit("@", 1)
        return DatasetSpec("ids", (base, ids_file), text)
    return _parse_base(text)


def _parse_base(text: str) -> DatasetSpec:
    if text in ("digits", "noisy-digits", "photo-rotation"):
        return DatasetSpec(text, (), text)
    kind, sep, rest = text.partition(":")
    if sep and kind in ("cifar10", "imagefolder"):
        return DatasetSpec(kind, (rest,), text)
    if sep and kind == "coco":
        images, _, json_file = rest.rpartition(":")
        return DatasetSpec("coco", (images, json_file), text)
    if sep and kind == "voc":
        root, split = rest, ""
        if ":" in rest and not os.path.isdir(rest):  # a colon inside a folder name is part of it
            root, split = rest.rsplit(":", 1)
        return DatasetSpec("voc", (root, split), text)
    return DatasetSpec("registered", (text,), text)


def format_spec(kind: str, *args: str) -> str:
    """The inverse of :func:`parse_spec`: ``format_spec("coco", images, json)`` -> ``coco:images:json``."""
    if kind in ("digits", "noisy-digits", "photo-rotation"):
        return kind
    if kind == "ids":
        return f"{args[0]}@{args[1]}"
    if kind == "registered":
        return args[0]
    return ":".join((kind,) + tuple(a for a in args if a))
