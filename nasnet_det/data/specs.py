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

Each form is an entry of :data:`FORMS` (a :class:`~nasnet_det.registry.Registry`), with its loader
as a ``"module:function"`` string, imported where the set is loaded; a plug-in adds a form with
``FORMS.register(name, DatasetForm(...))``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from ..errors import DataError
from ..registry import Registry


@dataclass(frozen=True)
class DatasetForm:
    """One form of the grammar: its task, how it is written (for help and errors), how the text after
    ``NAME:`` splits into arguments (None: a bare name, ``digits``), and the ``"module:function"``
    that loads it (classification: ``(args, img_size, augment, holdout) -> ClassificationData``;
    detection: ``(name, args, classes)`` registers it in Detectron2's catalog)."""

    task: str
    syntax: str
    split: Optional[Callable[[str], Tuple[str, ...]]] = None
    loader: str = ""

    def load_function(self) -> Callable:
        """The loader, imported now (the detection forms' loaders import Detectron2)."""
        import importlib

        module, _, attr = self.loader.partition(":")
        return getattr(importlib.import_module(module), attr)


def _coco_args(rest: str) -> Tuple[str, ...]:
    images, _, json_file = rest.rpartition(":")
    return images, json_file


def _voc_args(rest: str) -> Tuple[str, ...]:
    root, split = rest, ""
    if ":" in rest and not os.path.isdir(rest):  # a colon inside a folder name is part of it
        root, split = rest.rsplit(":", 1)
    return root, split


# name -> DatasetForm, in the order of the table above; a plug-in adds a form with FORMS.register
FORMS = Registry("dataset form", DataError)
_CLS = "nasnet_det.data.classification"
_DET = "nasnet_det.detection.datasets"
FORMS.register("digits", DatasetForm("classification", "digits", None, f"{_CLS}:digits_form"),
               help="scikit-learn's handwritten digits, shipped with the package")
FORMS.register("noisy-digits", DatasetForm("classification", "noisy-digits", None, f"{_CLS}:noisy_digits_form"),
               help="the digits, shifted and with Gaussian noise")
FORMS.register("photo-rotation", DatasetForm("classification", "photo-rotation", None, f"{_CLS}:photo_rotation_form"),
               help="rotation prediction on crops of the shipped raccoon photos")
FORMS.register("cifar10", DatasetForm("classification", "cifar10:PATH", lambda rest: (rest,), f"{_CLS}:cifar10_form"),
               help="the CIFAR-10 python folder")
FORMS.register("imagefolder", DatasetForm("classification", "imagefolder:PATH", lambda rest: (rest,),
                                          f"{_CLS}:imagefolder_form"), help="PATH/train/<class>/*, PATH/val/<class>/*")
FORMS.register("coco", DatasetForm("detection", "coco:IMAGES:JSON", _coco_args, f"{_DET}:register_coco_form"),
               help="a COCO-format detection set")
FORMS.register("voc", DatasetForm("detection", "voc:ROOT[:SPLIT]", _voc_args, f"{_DET}:register_voc_form"),
               help="a Pascal VOC layout")
FORMS.register("ids", DatasetForm("detection", "SPEC@IDS.txt", None, f"{_DET}:register_ids_form"),
               help="a detection set restricted to the image ids in the file")
FORMS.register("registered", DatasetForm("detection", "NAME", None, ""),
               help="a dataset registered in Detectron2 (e.g. coco_2017_val)")


def syntaxes(task: str) -> str:
    """The forms of ``task`` as they are written, for a message: "digits, ..., imagefolder:PATH"."""
    return ", ".join(FORMS.get(n).syntax for n in FORMS.names() if FORMS.get(n).task == task)


@dataclass(frozen=True)
class DatasetSpec:
    kind: str  # a name of FORMS
    args: Tuple[str, ...]  # cifar10/imagefolder: (path,); coco: (images, json); voc: (root, split or "");
    #                        ids: (base spec, ids file); registered: (name,)
    text: str

    @property
    def form(self) -> DatasetForm:
        return FORMS.get(self.kind)

    @property
    def task(self) -> str:
        return self.form.task


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
    if text in FORMS and FORMS.get(text).split is None and text not in ("ids", "registered"):
        return DatasetSpec(text, (), text)  # a bare name: digits
    kind, sep, rest = text.partition(":")
    if sep and kind in FORMS and FORMS.get(kind).split is not None:
        return DatasetSpec(kind, FORMS.get(kind).split(rest), text)
    return DatasetSpec("registered", (text,), text)


def format_spec(kind: str, *args: str) -> str:
    """The inverse of :func:`parse_spec`: ``format_spec("coco", images, json)`` -> ``coco:images:json``."""
    if kind == "ids":
        return f"{args[0]}@{args[1]}"
    if kind == "registered":
        return args[0]
    if FORMS.get(kind).split is None:
        return kind
    return ":".join((kind,) + tuple(a for a in args if a))
