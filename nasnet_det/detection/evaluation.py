"""COCO evaluation of the detectors: Detectron2's COCOEvaluator on a dataset's own image ids, and the
``eval_results.json`` every run writes."""
from __future__ import annotations

import logging
import os
from typing import Optional

from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator
from detectron2.utils import comm

from ..io import write_json

logger = logging.getLogger("nasnet_det")


class ImageIdCOCOEvaluator(COCOEvaluator):
    """COCOEvaluator that scores only the dataset's ``eval_image_ids`` (``NAME@IDS.txt`` views).

    A dataset without a COCO JSON of its own (VOC by path, say) is converted to one each time, never
    read from an earlier run's cache: edited annotations must not be scored against old ground truth.
    """

    def __init__(self, dataset_name: str, **kwargs):
        meta = MetadataCatalog.get(dataset_name)
        if meta.get("converted_json_file", None) is not None:  # our conversion of an earlier call
            del meta.json_file, meta.converted_json_file
        converts = meta.get("json_file", None) is None
        super().__init__(dataset_name, allow_cached_coco=False, **kwargs)
        if converts:
            meta.set(converted_json_file=meta.json_file)
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
