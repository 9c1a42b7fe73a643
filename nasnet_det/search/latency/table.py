"""The latency table: part latencies on one device, a JSONL file (a header, then one line per part,
appended as it is timed, so a killed build continues where it stopped), its header checks (a table
carried from the target device), the part timer and the sum-of-parts model's correction."""
from __future__ import annotations

import json
import logging
import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple

import torch

from ...errors import UserError
from ..trials import TrialLog

logger = logging.getLogger(__name__)

TABLE_VERSION = 1
CLASSIFIER = "classifier"  # the network a table times unless told otherwise (see NETWORKS)


class LatencyError(UserError):
    """An unreadable or foreign latency table, or a target no cell meets."""


@dataclass(frozen=True)
class Part:
    """One timed unit: ``key`` names what it computes; ``run`` runs it once on its inputs."""

    key: str
    run: Callable[[], object]


def device_header(device: str, size: Tuple[int, int], batch: int, arch: str, network: str = CLASSIFIER) -> dict:
    return {"kind": "header", "version": TABLE_VERSION, "device": device,
            "device_name": torch.cuda.get_device_name() if device == "cuda" else _cpu_name(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "batch": batch,
            "size": list(size), "arch": arch, "network": network}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu"


# what must agree for a table to predict here (the arch may differ: keys name the shapes)
MATCHING = ("version", "device", "device_name", "torch", "threads", "batch")


def check_header(table: dict, expected: dict, path: str) -> None:
    """A table measured elsewhere (another device, torch or thread count) is one line naming each difference."""
    diff = [f"{k} {table.get(k)!r} (here {expected[k]!r})" for k in MATCHING if table.get(k) != expected[k]]
    if diff:
        raise LatencyError(f"{path} was measured elsewhere: {'; '.join(diff)}; build a table on this device "
                           "(nasnet-det latency-table) or search where the table was measured")


def time_part(run: Callable[[], object], device: str, warmup: int = 3, repeats: int = 15) -> float:
    """Median milliseconds of ``run`` after ``warmup`` calls (synchronised on a GPU)."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        run()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


class LatencyTable:
    """Part latencies on one device (ms), read from and appended to a JSONL file (or in memory)."""

    def __init__(self, path: Optional[str], device: str = "cpu", size: Tuple[int, int] = (224, 224), batch: int = 1,
                 arch: str = "", warmup: int = 3, repeats: int = 15, carried: bool = False, network: str = CLASSIFIER):
        """``carried``: a table measured on the target device and handed to this machine: used as it
        is (its device, size and batch), and parts it lacks are an error, not timed here."""
        self.path, self.device, self.size, self.batch, self.network = path, device, tuple(size), batch, network
        self.warmup, self.repeats, self.carried = warmup, repeats, carried
        self.local = True  # parts may be timed here
        self.elsewhere = ""  # why a carried table's parts cannot be timed here: its settings that differ
        self.header = device_header(device, self.size, batch, arch, network)
        self.entries: Dict[str, float] = {}
        # measured = a * sum of parts + b * parts + c, fitted on networks measured end to end where the
        # table was built (the per-call overhead and memory traffic the parts alone miss); None: the raw sum
        self.correction: Optional[dict] = None
        self._log = TrialLog(path) if path else None
        if self._log is not None and self._log.exists():
            self._read()
        elif self._log is not None:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._log.append(self.header)

    def _read(self) -> None:
        try:
            records = self._log.read()
        except OSError as e:
            raise LatencyError(f"cannot read latency table {self.path}: {e}") from None
        if not records:  # the header never reached the disk (full, or killed at once): start it again
            self._log.repair()
            self._log.append(self.header)
            records = [self.header]
        if records[0].get("kind") != "header":
            raise LatencyError(f"{self.path} is not a latency table (no header line); build one with "
                               "nasnet-det latency-table")
        if self.carried:
            here = self.header
            self.header = records[0]
            self.size, self.batch = tuple(self.header.get("size", self.size)), int(self.header.get("batch", self.batch))
            self.device = self.header.get("device", self.device)
            differ = [k for k in MATCHING if self.header.get(k) != here[k]]
            self.local = not differ
            self.elsewhere = ", ".join(f"{k} {self.header.get(k)!r} (here {here[k]!r})" for k in differ)
        else:
            check_header(records[0], self.header, self.path)
        built = records[0].get("network", CLASSIFIER)  # a classifier's table for a detector's search: one line
        if built != self.network:
            raise LatencyError(f"{self.path} times the {built} network, this asks for {self.network}: build a table "
                               f"with nasnet-det latency-table --network {self.network}")
        for number, r in enumerate(records[1:], 2):
            if r.get("kind") == "correction":
                if not all(isinstance(r.get(k), (int, float)) for k in ("a", "b", "c")):
                    raise LatencyError(f"{self.path}, line {number}: a correction needs numbers a, b and c")
                self.correction = r
                continue
            if not isinstance(r.get("key"), str) or not isinstance(r.get("ms"), (int, float)):
                raise LatencyError(f"{self.path}, line {number}: not a latency entry (needs 'key' and 'ms')")
            self.entries[r["key"]] = float(r["ms"])

    def measure(self, parts: Iterable[Part]) -> int:
        """Time each part not in the table yet (appending it); returns how many were timed."""
        if not self.local:
            raise LatencyError(f"{self.path} was measured with other settings ({self.elsewhere}): parts timed here "
                               "would not match it; build a table here with nasnet-det latency-table")
        new = 0
        for part in parts:
            if part.key in self.entries:
                continue
            ms = time_part(part.run, self.device, self.warmup, self.repeats)
            self.entries[part.key] = ms
            if self._log is not None:
                self._log.append({"key": part.key, "ms": ms})
            new += 1
        return new

    def predict_parts(self, parts: Sequence[Part], measure_missing: bool = True) -> float:
        missing = [p for p in parts if p.key not in self.entries]
        if missing and not (measure_missing and self.local):
            where = "" if self.local else f" (measured with other settings: {self.elsewhere})"
            raise LatencyError(f"{self.path or 'the latency table'}{where} lacks {len(missing)} parts of this network "
                               f"(e.g. {missing[0].key}): build the table for this architecture and size "
                               f"(nasnet-det latency-table --arch ... --size ...) on its device")
        self.measure(missing)
        total = sum(self.entries[p.key] for p in parts)
        if self.correction is None:
            return total
        c = self.correction
        return c["a"] * total + c["b"] * len(parts) + c["c"]

    def fit_correction(self, rows: Sequence[Tuple[float, int, float]]) -> dict:
        """Fit and store ``measured = a * sum + b * parts + c`` from (sum, parts, measured ms) rows."""
        import numpy as np

        x = np.array([[total, parts, 1.0] for total, parts, _ in rows])
        a, b, c = np.linalg.lstsq(x, np.array([m for _, _, m in rows]), rcond=None)[0]
        self.correction = {"kind": "correction", "a": float(a), "b": float(b), "c": float(c), "networks": len(rows)}
        if self._log is not None:
            self._log.append(self.correction)
        return self.correction


def read_table(path: str) -> dict:
    """A table file's header (for a table handed to a search)."""
    try:
        with open(path) as f:
            header = json.loads(f.readline())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LatencyError(f"cannot read latency table {path}: {e}") from None
    if not isinstance(header, dict) or header.get("kind") != "header":
        raise LatencyError(f"{path} is not a latency table (no header line)")
    return header
