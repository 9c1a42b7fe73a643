"""Atomic file writes: a reader (or a resumed run) never sees half a file.

A write goes to ``NAME.tmp<pid>.EXT`` beside the target and is renamed over it when complete. A
process killed mid-write leaves its temporary file behind; the next write to the same target
removes temporaries whose writer is gone. Missing parent folders are created.
"""
from __future__ import annotations

import glob
import json
import math
import os
import re
from contextlib import contextmanager
from typing import Iterator

from .errors import StorageError, UserError, storage_advice, storage_cause


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temporaries(path: str) -> int:
    """Remove ``NAME.tmp<pid>.EXT`` files of ``path`` left by writers that died; returns how many."""
    root, ext = os.path.splitext(path)
    pattern = re.compile(re.escape(os.path.basename(root)) + r"\.tmp(\d+)" + re.escape(ext) + "$")
    removed = 0
    for candidate in glob.glob(glob.escape(root) + ".tmp*" + glob.escape(ext)):
        m = pattern.match(os.path.basename(candidate))
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            try:
                os.remove(candidate)
                removed += 1
            except FileNotFoundError:
                pass
    return removed


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path`` (same extension, so writers that infer the format
    from it work); on success it replaces ``path``, on failure it is removed."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    remove_stale_temporaries(path)
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{os.getpid()}{ext}"
    try:
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        cause = storage_cause(e)
        if cause is None:
            raise
        kept = "the previous file is intact" if os.path.exists(path) else "nothing was written"
        raise StorageError(f"cannot write {path}: {cause} ({kept}); {storage_advice(e)}, then run the same "
                           "command again") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str, text: str) -> str:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
    return path


def finite_or_none(obj):
    """``obj`` with every NaN or infinity replaced by None (JSON has no NaN: ``null`` instead)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def write_json(path: str, obj, indent: int = 2) -> str:
    """Valid JSON (NaN and infinities written as ``null``), written atomically."""
    return write_text(path, json.dumps(finite_or_none(obj), indent=indent, allow_nan=False))


def tensorboard_writer(folder: str):
    """A TensorBoard ``SummaryWriter`` writing beside a run's files (``tensorboard --logdir``), or
    None where TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    os.makedirs(folder, exist_ok=True)
    return SummaryWriter(log_dir=folder)


def torch_save(obj, path: str) -> str:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


class FolderLock:
    """One writer per run folder: an exclusive ``fcntl`` lock on ``FOLDER/.lock`` (holding the
    writer's pid), released when the process ends, however it ends (the kernel drops it, so a
    ``kill -9`` leaves no stale lock). :meth:`acquire` raises ``error(message)`` naming the holder."""

    _held: dict = {}  # lock path -> [open file, count]: re-entrant within one process

    def __init__(self, folder: str, what: str = "run", name: str = ".lock"):
        """``name``: the lock file; another name locks one output of a folder others share."""
        self.path, self.what, self._file = os.path.abspath(os.path.join(folder, name)), what, None

    @classmethod
    def for_file(cls, path: str, what: str) -> "FolderLock":
        """One writer per output file of a shared folder: ``FOLDER/.<file>.lock``."""
        folder, name = os.path.split(os.path.abspath(path))
        return cls(folder, what, name=f".{name}.lock")

    def acquire(self, error=RuntimeError) -> "FolderLock":
        import fcntl

        if self.path in FolderLock._held:  # this process is already the folder's writer
            FolderLock._held[self.path][1] += 1
            self._file = FolderLock._held[self.path][0]
            return self
        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, exist_ok=True)
            f = open(self.path, "a+")
        except (FileExistsError, NotADirectoryError):
            raise error(f"cannot run this {self.what} in {folder}: it (or a folder above it) is a file, not a "
                        "folder; give a folder (it is created if missing)") from None
        except OSError as e:  # read-only, no permission, a full disk
            raise error(f"cannot run this {self.what} in {folder}: {e.strerror or e}; give a folder you can "
                        "write to") from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise error(f"cannot run this {self.what} in {os.path.dirname(self.path)}: another process (pid {holder}) "
                        "is writing there; wait for it to end, or use another output folder") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f
        FolderLock._held[self.path] = [f, 1]
        return self

    def release(self) -> None:
        if self._file is None:
            return
        self._file = None
        entry = FolderLock._held.get(self.path)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del FolderLock._held[self.path]
                entry[0].close()  # closing drops the lock


def refuse_file_as_folder(path: str, option: str) -> None:
    """An output folder given as the path of an existing file: one line, before any work."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{option} {path} is a file: give a folder (it is created if missing)")


def load_refusal(error: BaseException, limit: int = 300) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, for a one-line error: the unpickler's own
    reason, without torch's advice to load with ``weights_only=False`` (for a crafted file that
    advice would switch the protection off)."""
    import re

    text = " ".join(str(error).split())
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    sentences = [s for s in re.split(r"(?<=[.!?]) ", text) if "weights_only" not in s and "safe_globals" not in s
                 and "trust" not in s]
    reason = " ".join(sentences).strip() or "the file holds objects other than tensors and plain data"
    return f"{type(error).__name__}: {reason[:limit]}"


def log_files_give_way(*names: str) -> None:
    """A full disk ends a run with its own one line (the checkpoint that did not fit). The log files
    of the loggers ``names`` (Detectron2's ``setup_logger`` opens OUTPUT_DIR/log.txt, one stream
    shared by its loggers) then stop quietly at their first refused write, instead of printing
    "--- Logging error ---" with a traceback for every later line and "Exception ignored in atexit
    callback" at exit; any other logging error is reported as logging reports it."""
    import atexit
    import logging
    import sys

    consoles = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    files = [(logging.getLogger(name), handler) for name in names for handler in logging.getLogger(name).handlers
             if getattr(handler, "stream", None) is not None and handler.stream not in consoles]

    def give_way(stream) -> None:
        for logger, handler in files:
            if handler.stream is stream:
                logger.removeHandler(handler)
        atexit.unregister(stream.close)  # Detectron2 closes it at exit, which would flush into the full disk
        try:
            stream.close()
        except OSError:
            pass  # the buffered lines go where the disk would not take them

    for _, handler in files:
        def handle_error(record, handler=handler, stream=handler.stream):
            if storage_cause(sys.exc_info()[1]) is None:
                return logging.Handler.handleError(handler, record)
            give_way(stream)

        handler.handleError = handle_error


def resume_differences(stored: dict, current: dict, resumable=(), keep_whole=(), prefix: str = "") -> list:
    """``"name stored -> now"`` for each setting of a run folder (search.json, a checkpoint's
    settings) that differs from the settings a resume was given, nested dicts by dotted name, except
    the ``resumable`` names (how much work, and how it is run); ``keep_whole`` names dicts compared
    as one value. The search and pretraining both refuse a resume that changes anything else."""
    diffs = []
    for key in sorted(set(stored) | set(current)):
        name = prefix + key
        a, b = stored.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and name not in keep_whole:
            diffs += resume_differences(a, b, resumable, keep_whole, name + ".")
        elif name not in resumable and a != b:
            diffs.append(f"{name} {a!r} -> {b!r}")
    return diffs
