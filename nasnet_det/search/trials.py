"""The search's trial log: ``trials.jsonl``, one JSON object per finished attempt, appended with fsync.

A kill during an append can leave a torn last line. :meth:`TrialLog.repair` cuts it off before the
next append, so that the next record starts on a line of its own instead of being glued onto the
fragment (which would lose it too).
"""
from __future__ import annotations

import json
import logging
import os
from typing import List

logger = logging.getLogger("nasnet_det.search")


class TrialLog:
    def __init__(self, path: str):
        self.path = path

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
                    trials.append(record)
                else:
                    logger.warning("%s: ignoring line %d, which is not a JSON record", self.path, number)
        return trials

    def final(self) -> List[dict]:
        """The records that end a child (its result, or its last failed attempt)."""
        return [t for t in self.read() if t.get("final")]

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
        with open(self.path, "a") as f:
            f.write(json.dumps(trial) + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_trials(path: str) -> List[dict]:
    """Every complete record of a trial log (see :meth:`TrialLog.read`)."""
    return TrialLog(path).read()
