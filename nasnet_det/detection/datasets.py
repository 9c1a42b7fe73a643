"""Detection datasets named by path (the grammar of :mod:`nasnet_det.data.specs`), registered on
demand, so a new dataset needs no Python.

- ``coco:IMAGE_DIR:ANNOTATIONS.json``: a COCO-format detection set.
- ``voc:ROOT`` or ``voc:ROOT:SPLIT``: ``ROOT/Annotations`` + ``ROOT/JPEGImages`` (or ``annotations``
  + ``images``); without SPLIT, every annotation file. Class names are read from the XML files.
- ``SPEC@IDS.txt``: any of them or a registered dataset restricted to the image ids listed in the
  file (one per line); COCO evaluation is then run on those ids only.

Boxes that stick out of their image are clipped, and inverted or empty ones dropped, with one log
line per dataset that counts them and names an example file. Records without the fields a
detector needs, and images that cannot be decoded, are errors naming the file and the record;
``nasnet-det check-dataset`` checks a whole dataset up front.
"""
from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from typing import List, Optional

from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from detectron2.data.detection_utils import SizeMismatchError
from detectron2.structures import BoxMode

from ..data.specs import parse_spec, syntaxes
from ..errors import DatasetError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


_REPORTED = set()  # datasets whose box repairs were logged already


def check_boxes(dicts: List[dict], dataset: str) -> List[dict]:
    """Clip each box to its image and drop inverted or empty ones (in place); say so once per dataset."""
    clipped = dropped = 0
    example = None
    for d in dicts:
        height, width = d.get("height"), d.get("width")
        kept = []
        for ann in d.get("annotations", []):
            x1, y1, x2, y2 = BoxMode.convert(list(ann["bbox"]), ann["bbox_mode"], BoxMode.XYXY_ABS)
            if x2 > x1 and y2 > y1 and height and width:
                box = [min(max(x1, 0.0), width), min(max(y1, 0.0), height),
                       min(max(x2, 0.0), width), min(max(y2, 0.0), height)]
                if box != [x1, y1, x2, y2]:
                    clipped += 1
                    example = example or d.get("file_name")
                    x1, y1, x2, y2 = box
                    ann = {**ann, "bbox": BoxMode.convert(box, BoxMode.XYXY_ABS, ann["bbox_mode"])}
            if not (x2 > x1 and y2 > y1):
                dropped += 1
                example = example or d.get("file_name")
                continue
            kept.append(ann)
        d["annotations"] = kept
    if (clipped or dropped) and dataset not in _REPORTED:
        _REPORTED.add(dataset)
        logger.warning("%s: %d boxes clipped to their image, %d dropped (inverted, empty or outside the image), "
                       "e.g. in %s", dataset, clipped, dropped, example)
    return dicts


# PIL modes Detectron2's read_image converts to RGB by clipping at 255: a 16-bit PNG reads nearly all white
DEEP_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


class CheckedDatasetMapper(DatasetMapper):
    """Detectron2's DatasetMapper; an image that cannot be read, or that it would read wrong (a 16-bit
    or float image, saturated), is an error naming the file and record."""

    def __call__(self, dataset_dict):
        from PIL import Image

        record = f"(image_id {dataset_dict.get('image_id')!r})"
        if "file_name" not in dataset_dict:
            raise DatasetError(f"a record without 'file_name' {record}: every image needs a file")
        try:
            with Image.open(dataset_dict["file_name"]) as image:  # the header only: the mode
                mode = image.mode
            if mode in DEEP_MODES:
                raise DatasetError(f"image {dataset_dict['file_name']} {record} is {mode} (16-bit or float), which "
                                   "Detectron2 reads saturated: convert it to 8-bit RGB first (nasnet-det check-dataset "
                                   "lists every such image)")
            return super().__call__(dataset_dict)
        except Image.DecompressionBombError as e:
            raise DatasetError(f"image {dataset_dict['file_name']} {record} is too large to decode safely ({e}); "
                               "resize it, or raise PIL.Image.MAX_IMAGE_PIXELS if it is trusted") from None
        except (OSError, SyntaxError, SizeMismatchError) as e:  # PIL: truncated or not an image
            raise DatasetError(f"cannot read image {dataset_dict['file_name']} {record}: {type(e).__name__}: {e}; "
                               "nasnet-det check-dataset checks every image of a dataset") from None


def _voc_dirs(root: str):
    for ann, img in (("Annotations", "JPEGImages"), ("annotations", "images")):
        if os.path.isdir(os.path.join(root, ann)) and os.path.isdir(os.path.join(root, img)):
            return os.path.join(root, ann), os.path.join(root, img)
    raise DatasetError(f"voc:{root}: expected Annotations/ + JPEGImages/ or annotations/ + images/ in {root}")


def _voc_ids(root: str, ann_dir: str, split: Optional[str]) -> List[str]:
    if split is None:
        return sorted(os.path.splitext(f)[0] for f in os.listdir(ann_dir) if f.endswith(".xml"))
    path = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
    if not os.path.isfile(path):
        raise DatasetError(f"voc split file not found: {path}")
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]


def _parse_voc_xml(path: str) -> dict:
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as e:
        raise DatasetError(f"malformed VOC annotation {path}: {e}") from None
    root = tree.getroot()
    try:
        size = root.find("size")
        height, width = int(size.find("height").text), int(size.find("width").text)
        objects = []
        for obj in root.findall("object"):
            box = obj.find("bndbox")
            # VOC pixel indices are 1-based and inclusive: x1 - 1 gives Detectron2's continuous box
            x1, y1, x2, y2 = (float(box.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
            objects.append({"name": obj.find("name").text.strip(), "bbox": [x1 - 1, y1 - 1, x2, y2],
                            "difficult": int(getattr(obj.find("difficult"), "text", 0) or 0)})
        filename = root.find("filename").text if root.find("filename") is not None else None
    except (AttributeError, TypeError, ValueError) as e:
        raise DatasetError(f"malformed VOC annotation {path}: missing or bad field ({e})") from None
    return {"height": height, "width": width, "objects": objects, "filename": filename}


def voc_class_names(root: str, split: Optional[str] = None) -> List[str]:
    ann_dir, _ = _voc_dirs(root)
    names = set()
    for image_id in _voc_ids(root, ann_dir, split):
        names.update(o["name"] for o in _parse_voc_xml(os.path.join(ann_dir, image_id + ".xml"))["objects"])
    if not names:
        raise DatasetError(f"voc:{root}: no objects in the annotation files")
    return sorted(names)


def load_voc(root: str, split: Optional[str], class_names: List[str]) -> List[dict]:
    ann_dir, img_dir = _voc_dirs(root)
    dicts = []
    for index, image_id in enumerate(_voc_ids(root, ann_dir, split)):
        xml_path = os.path.join(ann_dir, image_id + ".xml")
        if not os.path.isfile(xml_path):
            raise DatasetError(f"annotation file not found: {xml_path}")
        ann = _parse_voc_xml(xml_path)
        candidates = ([ann["filename"]] if ann["filename"] else []) + [image_id + e for e in IMAGE_EXTENSIONS]
        image = next((os.path.join(img_dir, c) for c in candidates if os.path.isfile(os.path.join(img_dir, c))), None)
        if image is None:
            raise DatasetError(f"no image for {xml_path} in {img_dir}")
        annotations = []
        for obj in ann["objects"]:
            if obj["name"] not in class_names:
                continue  # a class the training set does not have
            annotations.append({"bbox": obj["bbox"], "bbox_mode": BoxMode.XYXY_ABS,
                                "category_id": class_names.index(obj["name"]),
                                "iscrowd": obj["difficult"]})
        dicts.append({"file_name": image, "image_id": index, "height": ann["height"],
                      "width": ann["width"], "annotations": annotations})
    return check_boxes(dicts, f"voc:{root}" + (f":{split}" if split else ""))


def _register_voc(name: str, root: str, split: Optional[str], classes: Optional[List[str]] = None) -> None:
    if not os.path.isdir(root):
        raise DatasetError(f"dataset folder not found: {root} (from {name!r})")
    classes = list(classes) if classes else voc_class_names(root, split)
    DatasetCatalog.register(name, lambda: load_voc(root, split, classes))
    MetadataCatalog.get(name).set(thing_classes=classes, evaluator_type="coco", dirname=root)


def _register_coco(name: str, image_dir: str, json_file: str) -> None:
    if not image_dir or not json_file:
        raise DatasetError(f"{name!r}: expected coco:IMAGE_DIR:ANNOTATIONS.json")
    if not os.path.isdir(image_dir):
        raise DatasetError(f"image folder not found: {image_dir} (from {name!r})")
    if not os.path.isfile(json_file):
        raise DatasetError(f"annotation file not found: {json_file} (from {name!r})")
    import json

    try:
        with open(json_file, encoding="utf-8") as f:
            data = json.load(f)
        categories = sorted(data["categories"], key=lambda c: c["id"])
        data["images"], data["annotations"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise DatasetError(f"malformed COCO annotation file {json_file}: {type(e).__name__}: {e}") from None
    check_coco_records(data, json_file)
    DatasetCatalog.register(name, lambda: check_boxes(load_coco_json(json_file, image_dir, name), name))
    # load_coco_json sets the id mapping when it runs; class names are needed before that
    MetadataCatalog.get(name).set(json_file=json_file, image_root=image_dir, evaluator_type="coco",
                                  thing_classes=[c["name"] for c in categories])


def check_coco_records(data: dict, json_file: str) -> None:
    """Every image has an id and a file name; every annotation an image, a known category and a box."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    category_ids = {}
    for i, c in enumerate(data["categories"]):
        if isinstance(c, dict) and c.get("id") in category_ids:  # COCO's API would keep one of the two
            raise DatasetError(f"{json_file}: categories[{category_ids[c['id']]}] and categories[{i}] share the id "
                               f"{c['id']!r}: give each category its own id")
        if isinstance(c, dict):
            category_ids[c.get("id")] = i
    image_ids = {}
    for i, image in enumerate(data["images"]):
        where = f"{json_file}: images[{i}]"
        if not isinstance(image, dict) or "id" not in image:
            raise DatasetError(f"{where}: an image record needs an 'id'")
        if not isinstance(image.get("file_name"), str):
            raise DatasetError(f"{where} (id {image['id']}): missing 'file_name'")
        if image["id"] in image_ids:  # load_coco_json would silently drop one of them
            raise DatasetError(f"{where} ({image['file_name']}) has the id {image['id']!r} of "
                               f"images[{image_ids[image['id']]}]: give each image its own id")
        image_ids[image["id"]] = i
    ann_ids: dict = {}
    for i, ann in enumerate(data["annotations"]):
        where = f"{json_file}: annotations[{i}]" + (f" (id {ann['id']})" if isinstance(ann, dict) and "id" in ann else "")
        if not isinstance(ann, dict):
            raise DatasetError(f"{where}: expected an object, got {ann!r}")
        if "id" not in ann:  # pycocotools indexes annotations by id
            raise DatasetError(f"{where}: an annotation record needs an 'id'")
        if ann["id"] in ann_ids:  # pycocotools would stop on a bare assertion
            raise DatasetError(f"{where} has the id of annotations[{ann_ids[ann['id']]}]: give each annotation "
                               "its own id")
        ann_ids[ann["id"]] = i
        box = ann.get("bbox")
        if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(number(v) for v in box)):
            raise DatasetError(f"{where}: 'bbox' must be [x, y, width, height], got {box!r}")
        if ann.get("image_id") not in image_ids:
            raise DatasetError(f"{where}: image_id {ann.get('image_id')!r} is not among the images")
        if ann.get("category_id") not in category_ids:
            raise DatasetError(f"{where}: category_id {ann.get('category_id')!r} is not among the categories")


def register_image_ids(name: str, base: str, ids_file: str, exclude: bool = False) -> None:
    """``base`` restricted to the image ids in ``ids_file`` (evaluated on those ids only), or with
    ``exclude`` to every other image (a training set)."""
    ensure_registered(base)
    if not os.path.isfile(ids_file):
        raise DatasetError(f"image id list not found: {ids_file} (from {name!r})")
    with open(ids_file) as f:
        lines = [(n, line.split()[0]) for n, line in enumerate(f, 1) if line.strip() and not line.startswith("#")]
    try:
        ids = [int(token) for _, token in lines]
    except ValueError:
        n, token = next((n, t) for n, t in lines if not t.lstrip("-").isdigit())
        raise DatasetError(f"{ids_file}, line {n}: {token!r} is not an image id (one integer per line)") from None
    wanted = set(ids)
    DatasetCatalog.register(name, lambda: [d for d in DatasetCatalog.get(base) if (d["image_id"] in wanted) != exclude])
    meta = MetadataCatalog.get(base).as_dict()
    meta.pop("name", None)
    if not exclude:
        meta["eval_image_ids"] = sorted(wanted)
    MetadataCatalog.get(name).set(**meta)


def ensure_registered(name: str, classes: Optional[List[str]] = None) -> str:
    """Register ``name`` if it is one of the path forms (:mod:`nasnet_det.data.specs`); return it.
    ``classes`` fixes the class list of a VOC set (a test set must use its training set's classes
    and order)."""
    if name in DatasetCatalog.list():
        return name
    spec = parse_spec(name)
    if spec.task == "classification":
        raise DatasetError(f"{name!r} is a classification dataset; detection takes {syntaxes('detection')} "
                           "(NAME: a registered Detectron2 name)")
    if spec.kind == "registered":
        raise DatasetError(f"unknown dataset {name!r}: not registered in Detectron2 "
                           "(builtin names need DETECTRON2_DATASETS) nor a coco:/voc: path")
    spec.form.load_function()(name, spec.args, classes)
    return name


# the loaders of the detection forms (data/specs.py's FORMS): (name, args, classes) registers the set
def register_coco_form(name: str, args, classes: Optional[List[str]] = None) -> None:
    _register_coco(name, *args)


def register_voc_form(name: str, args, classes: Optional[List[str]] = None) -> None:
    _register_voc(name, args[0], args[1] or None, classes)


def register_ids_form(name: str, args, classes: Optional[List[str]] = None) -> None:
    register_image_ids(name, *args)


def require_files(name: str) -> str:
    """A registered set whose files are not on disk (Detectron2's builtin names read
    ``$DETECTRON2_DATASETS``, default ``datasets``) is one line naming the missing path and the two
    ways out, before pycocotools or the VOC reader meet it; returns ``name``."""
    meta = MetadataCatalog.get(ensure_registered(name))
    for key, exists in (("json_file", os.path.isfile), ("image_root", os.path.isdir), ("dirname", os.path.isdir)):
        path = meta.get(key, None)
        if isinstance(path, str) and not exists(path):
            root = os.environ.get("DETECTRON2_DATASETS", "datasets")
            raise DatasetError(f"dataset {name!r} reads {path}, which is not on disk: put the files under "
                               f"$DETECTRON2_DATASETS (now {root!r}) as Detectron2's datasets/README.md lays them "
                               "out, or name the set by its paths (coco:IMAGES:ANNOTATIONS.json, voc:ROOT[:SPLIT])")
    return name


def register_cfg_datasets(cfg) -> None:
    """Register the path-form datasets of ``cfg.DATASETS`` and size the box predictor to the
    training set's classes (logged when that changes the config's value). ``cfg`` must be mutable."""
    for name in cfg.DATASETS.TRAIN:
        ensure_registered(name)
    train_classes = MetadataCatalog.get(cfg.DATASETS.TRAIN[0]).get("thing_classes", None) if cfg.DATASETS.TRAIN else None
    for name in cfg.DATASETS.TEST:
        ensure_registered(name, train_classes)
    if not cfg.DATASETS.TRAIN:
        return
    classes = train_classes
    if classes and len(classes) != cfg.MODEL.ROI_HEADS.NUM_CLASSES:
        logger.info("MODEL.ROI_HEADS.NUM_CLASSES: %d -> %d (the classes of %s: %s)",
                    cfg.MODEL.ROI_HEADS.NUM_CLASSES, len(classes), cfg.DATASETS.TRAIN[0],
                    ", ".join(classes[:10]) + (" ..." if len(classes) > 10 else ""))
        cfg.MODEL.ROI_HEADS.NUM_CLASSES = len(classes)
        cfg.MODEL.RETINANET.NUM_CLASSES = len(classes)


def check_dataset(name: str, progress: bool = True) -> dict:
    """Decode every image of a registered or path-form dataset and validate every record.

    Returns ``{"images": n, "boxes": n, "problems": [...]}``; each problem names the file and the
    record. What training would only meet mid-run (a truncated JPEG, a record without a box) is
    found up front.
    """
    from PIL import Image
    from tqdm import tqdm

    require_files(name)
    dicts = DatasetCatalog.get(name)
    classes = MetadataCatalog.get(name).get("thing_classes", None)
    problems, boxes, trainable = [], 0, 0
    if not dicts:
        problems.append(f"{name} has no images (an empty set, or image ids that match none): nothing to train or "
                        "evaluate on")
    for d in tqdm(dicts, desc=f"checking {name}", unit="image", disable=not progress, dynamic_ncols=True):
        record = f"(image_id {d.get('image_id')!r})"
        file_name = d.get("file_name")
        if not file_name:
            problems.append(f"a record without 'file_name' {record}")
            continue
        try:
            with Image.open(file_name) as image:
                image.load()
                size, mode = image.size, image.mode
        except (OSError, SyntaxError) as e:
            problems.append(f"{file_name} {record}: cannot decode: {e}")
            continue
        if mode in DEEP_MODES:  # Detectron2 reads these saturated (nearly all white)
            problems.append(f"{file_name} {record}: a {mode} image (16-bit or float); convert it to 8-bit RGB first")
        expected = (d.get("width"), d.get("height"))
        if None not in expected and tuple(size) != expected:
            problems.append(f"{file_name} {record}: the image is {size[0]}x{size[1]}, the record says "
                            f"{expected[0]}x{expected[1]}")
        for ann in d.get("annotations", []):
            boxes += 1
            trainable += not ann.get("iscrowd", 0)
            category = ann.get("category_id")
            if classes is not None and not (isinstance(category, int) and 0 <= category < len(classes)):
                problems.append(f"{file_name} {record}: category {category!r} outside 0..{len(classes) - 1}")
    if boxes and not trainable:
        problems.append(f"{name} has {boxes} boxes and every one is crowd / difficult: a detector has nothing to learn "
                        "from")
    return {"images": len(dicts), "boxes": boxes, "problems": problems}


# The TF Object Detection API's "minival", where the paper's COCO numbers come from: 8,059 COCO 2014
# validation images (tensorflow/models research/object_detection/data/mscoco_minival_ids.txt, shipped
# unchanged as package data). Detectron2's coco_2017_val is another 5,000-image split.
TF_MINIVAL_IDS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                              "coco_minival_tf_ids.txt")
TF_SPLIT = {"coco_2014_minival_tf": False, "coco_2014_valminusminival_tf": True}  # name -> exclude the ids


def register_tf_minival() -> None:
    """``coco_2014_minival_tf`` (evaluate there to compare with the paper) and its complement in
    COCO 2014 val, ``coco_2014_valminusminival_tf`` (train on it with ``coco_2014_train``)."""
    for name, exclude in TF_SPLIT.items():
        if name not in DatasetCatalog.list() and "coco_2014_val" in DatasetCatalog.list():
            register_image_ids(name, "coco_2014_val", TF_MINIVAL_IDS, exclude)


register_tf_minival()
