"""COCO evaluation of the detectors: Detectron2's COCOEvaluator on a dataset's own image ids, and the
``eval_results.json`` every run writes."""
from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from typing import Optional

from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator
from detectron2.utils import comm

from ..io import write_json

logger = logging.getLogger("nasnet_det")


def safe_name(name: str) -> str:
    """A file name for a dataset name (which may be a path: ``voc:../data:val``): no separators, no
    '..', and a hash of the whole name so two names never share a cache file."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:80] or "dataset"
    return f"{slug}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


class ImageIdCOCOEvaluator(COCOEvaluator):
    """COCOEvaluator that scores only the dataset's ``eval_image_ids`` (``NAME@IDS.txt`` views).

    A dataset without a COCO JSON of its own (VOC by path, say) is converted to one each time, never
    read from an earlier run's cache: edited annotations must not be scored against old ground truth.
    """

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None, **kwargs):
        from detectron2.data.datasets.coco import convert_to_coco_json

        meta = MetadataCatalog.get(dataset_name)
        if meta.get("converted_json_file", None) is not None:  # our conversion of an earlier call
            del meta.json_file, meta.converted_json_file
        if meta.get("json_file", None) is None:
            # converted here rather than by COCOEvaluator: its cache path is the raw dataset name (a
            # 'voc:../x' name would write outside output_dir), and it needs an output_dir we may not have
            folder = output_dir or os.path.join(tempfile.gettempdir(), f"nasnet_det-coco-{os.getpid()}")
            path = os.path.join(folder, f"{safe_name(dataset_name)}_coco_format.json")
            convert_to_coco_json(dataset_name, path, allow_cached=False)
            meta.set(json_file=path, converted_json_file=path)
        super().__init__(dataset_name, allow_cached_coco=False, output_dir=output_dir, **kwargs)
        self._eval_image_ids = meta.get("eval_image_ids", None)

    def evaluate(self, img_ids=None):
        return super().evaluate(img_ids if img_ids is not None else self._eval_image_ids)


def has_compiled_ops() -> bool:
    try:
        from detectron2 import _C  # noqa: F401
        return True
    except ImportError:
        return False


def results_by_dataset(cfg, results) -> dict:
    """{dataset: {"bbox": {...}}}, whether Detectron2 flattened one dataset's results or not."""
    if results and len(cfg.DATASETS.TEST) == 1 and cfg.DATASETS.TEST[0] not in results:
        return {cfg.DATASETS.TEST[0]: results}
    return dict(results or {})


def write_eval_results(cfg, results) -> Optional[str]:
    """``OUTPUT_DIR/eval_results.json``: {dataset: {"bbox": {"AP": ...}}}, written atomically."""
    if not results or not comm.is_main_process():
        return None
    results = results_by_dataset(cfg, results)
    path = os.path.join(cfg.OUTPUT_DIR, "eval_results.json")
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    write_json(path, results)
    logger.info("evaluation results written to %s", path)
    return path
