"""Run a NASNet detector on photos, as Detectron2's ``demo/demo.py`` does: eager, or the files
:mod:`.export` wrote (TorchScript, ONNX through onnxruntime).

Every input (a file, a glob or a folder) gets a drawn copy in the output folder (same stem), and
``predictions.json`` holds every detection in COCO's results format. A path that names no image or
an image that cannot be decoded is reported in one line and skipped; the other images are done.
"""
from __future__ import annotations

import glob
import json
import logging
import os
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError, DatasetError
from ..io import atomic_path, write_json
from .datasets import DEEP_MODES
from .export import FILES, OUTPUTS, onnx_session

logger = logging.getLogger(__name__)

RUNTIMES = ("eager", "torchscript", "onnxruntime")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def collect_inputs(items: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Image files named by files, globs or folders (sorted, each once), and one line per item that
    names none."""
    files, problems, seen = [], [], set()
    for item in items:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item) if f.lower().endswith(IMAGE_EXTENSIONS))
        elif os.path.isfile(item):
            found = [item]
        else:
            found = sorted(f for f in glob.glob(item) if os.path.isfile(f))
        if not found:
            problems.append(f"{item}: no such image, folder or matching file")
        for f in found:
            if os.path.abspath(f) not in seen:
                seen.add(os.path.abspath(f))
                files.append(f)
    return files, problems


def load_config(name: str, opts: Sequence[str] = ()):
    """A frozen config for inference: the GPU when there is one (``MODEL.DEVICE`` in ``opts`` wins).
    Datasets are not registered: predicting needs no training data on the machine."""
    from .config import get_config

    from .checkpoint import stored_class_names

    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = get_config(name, ["MODEL.DEVICE", device] + list(opts), register_datasets=False)
    names = stored_class_names(cfg.MODEL.WEIGHTS)
    if names and len(names) != cfg.MODEL.ROI_HEADS.NUM_CLASSES:
        # a shipped config (80 COCO classes) with weights trained on the user's own classes
        logger.info("%s was trained on %d classes (%s); the config says MODEL.ROI_HEADS.NUM_CLASSES %d: using "
                    "the checkpoint's", cfg.MODEL.WEIGHTS, len(names), ", ".join(names[:5]) + (" ..." if len(names) > 5 else ""),
                    cfg.MODEL.ROI_HEADS.NUM_CLASSES)
        cfg.MODEL.ROI_HEADS.NUM_CLASSES = len(names)
    cfg.freeze()
    return cfg


def class_names_of(cfg, stored: Optional[List[str]] = None) -> List[str]:
    """The model's class names: stored with it, else the training set's, else numbers."""
    if stored:
        return list(stored)
    from detectron2.data import MetadataCatalog

    if cfg.DATASETS.TRAIN:
        names = MetadataCatalog.get(cfg.DATASETS.TRAIN[0]).get("thing_classes", None)
        if names and len(names) == cfg.MODEL.ROI_HEADS.NUM_CLASSES:
            return list(names)
    return [f"class {i}" for i in range(cfg.MODEL.ROI_HEADS.NUM_CLASSES)]


def _exported_class_names(path: str) -> Optional[List[str]]:
    """The class names an export wrote beside its model (``metadata.json``), or None without one."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{path} is not readable JSON ({type(e).__name__}): export again with tools/export.py") from None
    names = meta.get("thing_classes") if isinstance(meta, dict) else None
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise CheckpointError(f"{path}: 'thing_classes' must be a list of names, got {names!r}")
    return names


class Predictor:
    """Images (HWC arrays in ``cfg.INPUT.FORMAT``) -> Detectron2 ``Instances`` at the images' size."""

    def __init__(self, cfg, runtime: str = "eager", model_dir: Optional[str] = None, purpose: str = "predict with"):
        from detectron2.data import transforms as T

        if runtime not in RUNTIMES:
            raise ConfigError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
        self.cfg, self.runtime = cfg, runtime
        self.resize = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
        stored = None
        if runtime == "eager":
            from detectron2.modeling import build_model

            from .checkpoint import NASNetCheckpointer

            if not cfg.MODEL.WEIGHTS:
                raise ConfigError(f"no weights to {purpose}: give MODEL.WEIGHTS path/to/model_final.pth")
            self.model = build_model(cfg).eval()
            extra = NASNetCheckpointer(self.model, cfg=cfg, strict=True).load(cfg.MODEL.WEIGHTS)
            stored = extra.get("thing_classes")
        else:
            if not model_dir:
                raise ConfigError(f"--runtime {runtime} runs exported files: give --model-dir (tools/export.py's --output)")
            file = os.path.join(model_dir, FILES["torchscript" if runtime == "torchscript" else "onnx"])
            if not os.path.isfile(file):
                raise CheckpointError(f"{file} not found: export it first (tools/export.py --format "
                                      f"{'torchscript' if runtime == 'torchscript' else 'onnx'} --output {model_dir})")
            meta_path = os.path.join(model_dir, "metadata.json")
            stored = _exported_class_names(meta_path)
            self.module = torch.jit.load(file) if runtime == "torchscript" else onnx_session(file)
        self.class_names = class_names_of(cfg, stored)

    def _exported(self, image: torch.Tensor):
        from detectron2.structures import Boxes, Instances

        if self.runtime == "torchscript":
            with torch.no_grad():
                outputs = dict(zip(OUTPUTS, self.module(image)))
        else:
            outputs = {k: torch.as_tensor(v) for k, v in zip(OUTPUTS, self.module.run(None, {"image": image.numpy()}))}
        instances = Instances(tuple(image.shape[-2:]))
        instances.pred_boxes = Boxes(outputs["boxes"])
        instances.scores = outputs["scores"]
        instances.pred_classes = outputs["classes"].long()
        return instances

    MIN_SIDE = 8  # px after the test resize: a thinner image leaves the network nothing to see

    def unusable(self, image: np.ndarray) -> Optional[str]:
        """Why ``image`` cannot be predicted on (None if it can): the test resize would leave it too thin."""
        from detectron2.data import transforms as T

        h, w = image.shape[:2]
        new = T.ResizeShortestEdge.get_output_shape(h, w, self.cfg.INPUT.MIN_SIZE_TEST, self.cfg.INPUT.MAX_SIZE_TEST)
        if min(new) < self.MIN_SIDE:
            return (f"{w}x{h} px is too thin: the test resize (INPUT.MIN_SIZE_TEST {self.cfg.INPUT.MIN_SIZE_TEST}, "
                    f"MAX_SIZE_TEST {self.cfg.INPUT.MAX_SIZE_TEST}) makes it {new[1]}x{new[0]} px")
        return None

    def prepare(self, image: np.ndarray) -> torch.Tensor:
        """An HWC image as the model takes it: resized for testing, CHW float."""
        resized = self.resize.get_transform(image).apply_image(image)
        return torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))

    def __call__(self, images: List[np.ndarray]):
        from detectron2.modeling.postprocessing import detector_postprocess

        inputs = [{"image": self.prepare(image), "height": image.shape[0], "width": image.shape[1]} for image in images]
        if self.runtime == "eager":
            with torch.no_grad():
                return [out["instances"] for out in self.model(inputs)]
        return [detector_postprocess(self._exported(x["image"]), x["height"], x["width"]) for x in inputs]


def _output_name(path: str, taken: set) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    name, n = stem, 1
    while name in taken:  # two inputs of the same stem (from two folders)
        name, n = f"{stem}_{n}", n + 1
    taken.add(name)
    return name + ".jpg"


def predict(predictor: Predictor, paths: Sequence[str], output_dir: str, batch_size: int = 2,
            threshold: float = 0.5, progress: bool = True, problems: Optional[List[str]] = None,
            report: Callable[[str], None] = logger.warning) -> dict:
    """Predict on ``paths``, draw each into ``output_dir``, write ``predictions.json``; returns
    ``{"images", "detections", "problems"}``. Unreadable images are reported and skipped."""
    import cv2
    from PIL import Image
    from detectron2.data.catalog import Metadata
    from detectron2.data.detection_utils import convert_image_to_rgb, read_image
    from detectron2.utils.visualizer import Visualizer
    from tqdm import tqdm

    problems = list(problems or [])
    os.makedirs(output_dir, exist_ok=True)
    # an unregistered Metadata: the catalog's entries refuse another value for thing_classes later
    metadata = Metadata(thing_classes=list(predictor.class_names))
    results, taken, done = [], set(), 0
    bar = tqdm(total=len(paths), desc="predict", unit="image", disable=not progress, dynamic_ncols=True)
    for start in range(0, len(paths), batch_size):
        batch = []
        for path in paths[start: start + batch_size]:
            try:
                with Image.open(path) as header:  # the mode only: Detectron2 reads 16-bit / float saturated
                    mode = header.mode
                if mode in DEEP_MODES:
                    problem = f"a {mode} image (16-bit or float), which Detectron2 reads saturated: convert it to 8-bit RGB"
                else:
                    image = read_image(path, format=predictor.cfg.INPUT.FORMAT)
                    problem = predictor.unusable(image)
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # not an image, truncated, a bomb
                problem = f"cannot read the image ({type(e).__name__}: {e})"
            if problem is None:
                batch.append((path, image))
            else:  # one line, and the rest of the inputs are still predicted and written
                problems.append(f"{path}: {problem}")
                report(f"error: {problems[-1]}")
                bar.update(1)
        if not batch:
            continue
        for (path, image), instances in zip(batch, predictor([image for _, image in batch])):
            instances = instances[instances.scores >= threshold].to("cpu")
            rgb = convert_image_to_rgb(image, predictor.cfg.INPUT.FORMAT)
            drawn = Visualizer(rgb, metadata).draw_instance_predictions(instances).get_image()
            target = os.path.join(output_dir, _output_name(path, taken))
            with atomic_path(target) as tmp:
                cv2.imwrite(tmp, drawn[:, :, ::-1])
            image_id = done
            for box, cls, score in zip(instances.pred_boxes.tensor.tolist(), instances.pred_classes.tolist(),
                                       instances.scores.tolist()):
                x1, y1, x2, y2 = box
                results.append({"image_id": image_id, "file_name": path, "category_id": int(cls),
                                "category_name": predictor.class_names[int(cls)],
                                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                                "score": round(float(score), 5)})
            done += 1
            bar.update(1)
    bar.close()
    write_json(os.path.join(output_dir, "predictions.json"), results)
    return {"images": done, "detections": len(results), "problems": problems}


def require_images(files: List[str], problems: List[str]) -> None:
    if not files:
        raise DatasetError("no image to predict on: " + "; ".join(problems or ["no input given"]))
