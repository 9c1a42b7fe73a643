"""Atomic file writes: a reader (or a resumed run) never sees half a file."""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path`` (same extension, so writers that infer the format
    from it work); on success it replaces ``path``, on failure it is removed."""
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{os.getpid()}{ext}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str, text: str) -> str:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
    return path


def write_json(path: str, obj, indent: int = 2) -> str:
    return write_text(path, json.dumps(obj, indent=indent))


def torch_save(obj, path: str) -> str:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path
