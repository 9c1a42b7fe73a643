"""The search's trial log: ``trials.jsonl``, one JSON object per finished attempt, appended with fsync.

A kill during an append can leave a torn last line. :meth:`TrialLog.repair` cuts it off before the
next append, so that the next record starts on a line of its own instead of being glued onto the
fragment (which would lose it too).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Callable, List, Optional

from .. import genotypes
from ..errors import GenotypeError, SearchError, StorageError, storage_cause

logger = logging.getLogger("nasnet_det.search")


STATUSES = ("ok", "failed")


def check_record(record: dict, where: str) -> None:
    """A trial record the search can count: an ``id``, a ``status``, a numeric ``reward`` (or none yet)
    and a genotype of the vocabulary; else one :class:`SearchError` naming the file and line."""
    problem = None
    if not isinstance(record.get("id"), int) or isinstance(record.get("id"), bool) or record["id"] < 0:
        problem = f"'id' must be a child number, got {record.get('id')!r}"
    elif record.get("status") not in STATUSES:
        problem = f"'status' must be one of {', '.join(STATUSES)}, got {record.get('status')!r}"
    elif record.get("reward") is not None and (isinstance(record["reward"], bool)
                                                or not isinstance(record["reward"], (int, float))):
        problem = f"'reward' must be a number, got {record['reward']!r}"
    elif record.get("status") == "ok" and record.get("reward") is None:
        problem = "a record with status 'ok' has no reward"
    if problem is None and "genotype" in record:
        try:
            genotypes.Genotype.from_dict(record["genotype"], where="'genotype'")
        except GenotypeError as e:
            problem = str(e)
    if problem:
        raise SearchError(f"{where}: {problem}. The trial log is not one this search wrote: restore it, or "
                          "search into another --out")


class TrialLog:
    """An append-only JSONL log (the search's ``trials.jsonl``; also the resumable score files of
    ``nasnet-det rank`` and the benchmarks). ``check(record, where)`` vets each record read."""

    def __init__(self, path: str, check: Optional[Callable[[dict, str], None]] = None):
        self.path = path
        self.check = check

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def read(self) -> List[dict]:
        """Every complete record; a line that is not a JSON object (torn by a kill) is skipped."""
        trials = []
        if not self.exists():
            return trials
        with open(self.path, "rb") as f:
            for number, line in enumerate(f, 1):
                if not line.endswith(b"\n"):
                    logger.warning("%s: ignoring the torn last line (%d bytes)", self.path, len(line))
                    break
                try:
                    record = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    record = None
                if isinstance(record, dict):
                    if self.check is not None:
                        self.check(record, f"{self.path}, line {number}")
                    trials.append(record)
                else:
                    logger.warning("%s: ignoring line %d, which is not a JSON record", self.path, number)
        return trials

    def final(self) -> List[dict]:
        """The records that end a child (its result, or its last failed attempt), one per child: a
        second final record of a child (two writers before the folder lock existed) is dropped."""
        seen, final = set(), []
        for t in self.read():
            if t.get("final") and t.get("id") not in seen:
                seen.add(t.get("id"))
                final.append(t)
        return final

    def repair(self) -> int:
        """Cut a torn last line off (an append interrupted by a kill); returns the bytes removed."""
        if not self.exists():
            return 0
        with open(self.path, "rb+") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size == 0:
                return 0
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return 0
            # find the end of the last complete line, reading backwards in chunks
            end, chunk = size, 1 << 16
            keep = 0
            while end > 0:
                start = max(0, end - chunk)
                f.seek(start)
                data = f.read(end - start)
                newline = data.rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    break
                end = start
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        logger.warning("%s: removed a torn last line (%d bytes) left by an interrupted write", self.path, size - keep)
        return size - keep

    def append(self, trial: dict) -> None:
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(trial) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            cause = storage_cause(e)
            if cause is None:
                raise
            raise StorageError(f"cannot append to {self.path}: {cause}; every complete record before it is kept "
                               "(a torn last line is cut off when read): free space or raise the file-size limit "
                               "(ulimit -f), then rerun with --resume") from None


def read_trials(path: str) -> List[dict]:
    """Every complete record of a trial log (see :meth:`TrialLog.read`)."""
    return TrialLog(path, check_record).read()
