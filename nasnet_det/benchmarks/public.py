"""Public ground truths of the NASNet / DARTS space, read into one record format.

A record is ``{"id", "genotype" (dict), "accuracy" (percent), ...}``. Two formats are read
(:func:`read_truth` tells them apart by their content):

- **cells JSONL** (this package's format; the LaMCTS file ``lamcts_cifar10_dev.jsonl`` is one): one
  object per line with ``genotype`` and a number under the truth key (``cifar10_acc`` for LaMCTS,
  ``accuracy`` for the shipped ground truth).
- **NASLib's zero-cost JSON** (``zc_nasbench301.json``, automl/NASLib, Apache-2.0):
  ``{"nasbench301": {"cifar10": {KEY: {"val_accuracy", "params", "synflow", ...}}}}``, each KEY a
  NASLib "compact" DARTS encoding, converted by :func:`nasnet_det.genotypes.from_naslib_compact`.
  NASLib's own zero-cost scores come along under ``"zc"``.

Nothing here ships or downloads data: benchmarks read these files from a path they are given.
"""
from __future__ import annotations

import ast
import json
import os
import random
from typing import Iterator, List, Optional, Tuple

from .. import genotypes
from ..errors import UserError

TRUTH_KEYS = ("cifar10_acc", "accuracy", "val_accuracy")  # looked up in this order when none is named


def _nb301(path: str, data: dict) -> List[dict]:
    try:
        table = data["nasbench301"]["cifar10"]
    except (KeyError, TypeError):
        raise UserError(f"{path}: a JSON object that is not NASLib's zero-cost file "
                        "(expected {'nasbench301': {'cifar10': {compact key: {...}}}})") from None
    records = []
    for number, (key, value) in enumerate(table.items()):
        where = f"{path} entry {number}"
        try:
            compact = ast.literal_eval(key)
        except (ValueError, SyntaxError):
            raise UserError(f"{where}: the key {key[:60]!r} is not a NASLib compact encoding") from None
        try:
            genotype = genotypes.from_naslib_compact(compact, name=f"nb301_{number}")
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
        accuracy = value.get("val_accuracy") if isinstance(value, dict) else None
        if not isinstance(accuracy, (int, float)):
            raise UserError(f"{where}: no number under 'val_accuracy'")
        records.append({"id": number, "genotype": genotype.to_dict(), "accuracy": float(accuracy),
                        "zc": {k: v for k, v in value.items() if k != "val_accuracy"}})
    return records


def cell_lines(path: str) -> Iterator[Tuple[str, dict, genotypes.Genotype]]:
    """``(where, object, genotype)`` per non-blank line of a cells JSONL file; a line that is not a
    JSON object with a valid ``genotype`` is one error naming the file and the line (``nasnet-det
    rank`` reads its cells through this too)."""
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{where}: not JSON ({e.msg}); expected one object per line with a 'genotype' "
                                "key, or NASLib's zero-cost JSON") from None
            if not isinstance(obj, dict) or "genotype" not in obj:
                raise UserError(f"{where}: expected a JSON object with a 'genotype' key")
            try:
                genotype = genotypes.get(obj["genotype"])
            except UserError as e:
                raise UserError(f"{where}: {e}") from None
            yield where, obj, genotype


def is_naslib_file(path: str) -> bool:
    """Whether ``path`` is NASLib's zero-cost JSON (by its first bytes) rather than cells JSONL."""
    with open(path, "rb") as f:
        head = f.read(200)
    return head.lstrip().startswith(b"{") and b'"nasbench301"' in head


def _jsonl(path: str, key: Optional[str]) -> List[dict]:
    records = []
    for where, obj, genotype in cell_lines(path):
        truth = key or next((k for k in TRUTH_KEYS if k in obj), None)
        value = obj.get(truth) if truth else None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
            raise UserError(f"{where}: no accuracy (a number under {key or ' / '.join(TRUTH_KEYS)})")
        records.append({**{k: v for k, v in obj.items() if k not in ("genotype", truth)},
                        "id": obj.get("id", len(records)), "genotype": genotype.to_dict(), "accuracy": float(value)})
    return records


def read_truth(path: str, key: Optional[str] = None) -> List[dict]:
    """The records of a ground-truth file of either format (one error line naming the file, line or
    entry otherwise)."""
    if not os.path.isfile(path):
        raise UserError(f"ground-truth file not found: {path}")
    if is_naslib_file(path):
        try:
            with open(path) as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
        return _nb301(path, data)
    records = _jsonl(path, key)
    if not records:
        raise UserError(f"{path} holds no cells")
    return records


def spread_sample(records: List[dict], count: int, seed: int = 0) -> List[dict]:
    """``count`` records spread over the accuracy range: the records sorted by accuracy, cut into
    ``count`` equal bins, one drawn at random from each (so the sample follows the truth's
    distribution, tail included), returned in a seeded random order, so that any prefix of it is a
    smaller sample of the same kind."""
    rng = random.Random(seed)
    if count >= len(records):
        picked = list(records)
    else:
        ordered = sorted(records, key=lambda r: r["accuracy"])
        edges = [round(i * len(ordered) / count) for i in range(count + 1)]
        picked = [ordered[rng.randrange(edges[i], edges[i + 1])] for i in range(count)]
    rng.shuffle(picked)
    return picked
