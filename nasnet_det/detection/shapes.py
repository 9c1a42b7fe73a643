"""A generated detection set that needs no download: coloured shapes on natural-looking textures.

Each image has a smooth random texture (a few low-frequency colour waves plus grain) and 1-4
objects of three classes (circle, square, triangle) at sizes from 12% to 45% of the image,
in random saturated colours. Written as COCO JSON so it registers through ``coco:IMAGE_DIR:JSON``.
"""
from __future__ import annotations

import math
import os
import random
from typing import Dict, Tuple

import numpy as np
from PIL import Image, ImageDraw

from ..data.specs import format_spec
from ..io import write_json

CLASSES = ("circle", "square", "triangle")


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.zeros((size, size, 3))
    base = rng.uniform(60, 190, 3)
    for _ in range(4):
        fx, fy, phase = rng.uniform(0.5, 4), rng.uniform(0.5, 4), rng.uniform(0, 2 * math.pi)
        wave = np.sin(2 * math.pi * (fx * x + fy * y) + phase)
        image += wave[..., None] * rng.uniform(-35, 35, 3)
    image += base + rng.normal(0, 10, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _colour(rng: random.Random) -> Tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.7, 1.0), rng.uniform(0.6, 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def _draw(draw: ImageDraw.ImageDraw, cls: str, box, colour) -> None:
    x0, y0, x1, y1 = box
    if cls == "circle":
        draw.ellipse(box, fill=colour)
    elif cls == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=colour)


def generate_split(folder: str, count: int, size: int, seed: int) -> str:
    """Write ``count`` images and ``annotations.json`` into ``folder``; returns the JSON path."""
    os.makedirs(folder, exist_ok=True)
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    images, annotations = [], []
    for i in range(count):
        canvas = Image.fromarray(_texture(nrng, size))
        draw = ImageDraw.Draw(canvas)
        placed = []
        for _ in range(rng.randint(1, 4)):
            for _attempt in range(20):  # avoid heavy overlap, so every object stays visible
                side = rng.randint(int(0.12 * size), int(0.45 * size))
                x0, y0 = rng.randint(0, size - side), rng.randint(0, size - side)
                box = (x0, y0, x0 + side, y0 + side)
                if all(_iou(box, other) < 0.1 for other, _ in placed):
                    break
            else:
                continue
            cls = rng.randrange(len(CLASSES))
            _draw(draw, CLASSES[cls], box, _colour(rng))
            placed.append((box, cls))
        name = f"{i:05d}.png"
        canvas.save(os.path.join(folder, name))
        images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
        for box, cls in placed:
            w, h = box[2] - box[0], box[3] - box[1]
            area = w * h * (math.pi / 4 if CLASSES[cls] == "circle" else 0.5 if CLASSES[cls] == "triangle" else 1.0)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": cls + 1,
                                "bbox": [box[0], box[1], w, h], "area": area, "iscrowd": 0})
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": k + 1, "name": c} for k, c in enumerate(CLASSES)]}
    # written last, atomically: a folder with annotations.json is complete
    return write_json(os.path.join(folder, "annotations.json"), data, indent=None)


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def generate(root: str, train: int = 400, val: int = 80, size: int = 128, seed: int = 0) -> Dict[str, str]:
    """Generate (or reuse) the set; returns {"train": "coco:DIR:JSON", "val": ...} dataset names."""
    names = {}
    for split, count, split_seed in (("train", train, seed), ("val", val, seed + 1)):
        folder = os.path.join(root, f"{split}_{count}_{size}_{split_seed}")
        path = os.path.join(folder, "annotations.json")
        if not os.path.isfile(path):
            generate_split(folder, count, size, split_seed)
        names[split] = format_spec("coco", folder, path)
    return names
