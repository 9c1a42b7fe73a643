"""Latency on the device at hand, as a lookup table (ProxylessNAS / FBNet) and a sum-of-parts model.

A network's forward is cut into *parts*: the stem, each cell's input convs, each block's two ops,
the concat adapters, the head, and each cell's glue (the ReLUs, adds and the concat between them).
Each part is timed alone on this device at the input shape it gets in the network (warm-up, then
the median of repeated runs) and stored under a key that names what it computes (the module's
structure and the input shape), so one table serves every cell of the space at that size. A
network's predicted latency is the sum of its parts' entries.

The table is a JSONL file: a header (device, torch, threads, batch, input size) and one line per
part, appended as it is timed, so a killed build continues where it stopped and a table measured on
the target device can be carried to the machine that searches (:func:`check_header`).
"""
from __future__ import annotations

import copy
import hashlib
import importlib
import json
import logging
import os
import random
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .. import genotypes
from ..errors import UserError
from ..modeling import build_nasnet
from ..modeling.ops import reads_relu
from .trials import TrialLog

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


def _shape_key(xs: Sequence[torch.Tensor]) -> str:
    return ";".join("x".join(str(d) for d in x.shape) for x in xs)


def module_settings(module: nn.Module, containers: bool = False) -> str:
    """The plain settings of each submodule (a pool's kind, kernel and stride hold no tensors and
    show in no repr): with the repr, what tells two parts of one input shape apart. ``containers``:
    lists and dicts too (a detector head's top-k per mode)."""
    kinds = (int, float, str, bool, tuple) + ((list, dict) if containers else ())
    out = []
    for name, m in module.named_modules():
        plain = {k: v for k, v in vars(m).items() if not k.startswith("_") and isinstance(v, kinds)}
        out.append(f"{name}={sorted(plain.items())}")
    return ";".join(out)


def module_key(module: nn.Module, inputs: Sequence[torch.Tensor]) -> str:
    digest = hashlib.sha1((repr(module) + module_settings(module)).encode()).hexdigest()[:12]
    return f"{type(module).__name__}:{digest}:{_shape_key(inputs)}"


def net_parts(net: nn.Module, size: Tuple[int, int], batch: int, device: str, head: bool = True) -> List[Part]:
    """The parts of ``net``'s forward on a ``batch`` x 3 x H x W input, with inputs of their shapes
    (found by a forward on the meta device: shapes without compute); ``head=False``: without the
    global pool and classifier (a detector's backbone)."""
    meta = copy.deepcopy(net).to("meta").eval()
    shapes: Dict[str, List[torch.Size]] = {}
    glue: List[Tuple[str, list]] = []
    real = dict(net.named_modules())
    handles = []

    def hook(name):
        def record(module, inputs, output):
            shapes[name] = [x.shape for x in inputs if isinstance(x, torch.Tensor)]
            if name.startswith("cells.") and name.count(".") == 1:
                shapes[name + ":out"] = [output.shape]
        return record

    timed = {"stem", "global_pool", "classifier"} if head else {"stem"}
    for name, module in meta.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        if name in timed or leaf in ("pre0", "pre1", "op_a", "op_b") or parent.endswith("concat_adapters") \
                or (name.startswith("cells.") and name.count(".") == 1):
            handles.append(module.register_forward_hook(hook(name)))
    with torch.no_grad():
        meta(torch.zeros(batch, 3, *size, device="meta"))
    for h in handles:
        h.remove()

    parts: List[Part] = []
    for name, in_shapes in shapes.items():
        if name.endswith(":out") or (name.startswith("cells.") and name.count(".") == 1):
            continue
        module = real[name]
        if isinstance(module, nn.Identity) or not in_shapes:
            continue
        xs = [torch.randn(s, device=device) for s in in_shapes]
        if name.endswith(("op_a", "op_b")) and reads_relu(module):
            xs = [x.relu() for x in xs]
        parts.append(Part(module_key(module, xs), _runner(module, xs)))
    for name, module in real.items():  # the glue of each cell: ReLUs, adds, the concat
        if name.startswith("cells.") and name.count(".") == 1 and name in shapes:
            glue.append((name, _glue_shapes(module, shapes, name)))
    for name, spec in glue:
        parts.append(_glue_part(spec, device))
    return parts


def _runner(module: nn.Module, xs: List[torch.Tensor]) -> Callable[[], object]:
    module = module.eval()

    def run():
        with torch.no_grad():
            return module(*xs)
    return run


def _glue_shapes(cell: nn.Module, shapes: dict, name: str) -> dict:
    """What a cell computes besides its modules: ReLUs of the states its ops read, one add per
    block, the concat of its outputs (counts and shapes: a table key)."""
    out = shapes[name + ":out"][0]
    blocks = len(cell.blocks)
    relu_reads = len({i for block, inputs in zip(cell.blocks, cell.inputs)
                      for op, i in zip((block.op_a, block.op_b), inputs) if reads_relu(op)})
    block_shape = shapes.get(f"{name}.blocks.0.op_a", [out])[0]
    return {"blocks": blocks, "relus": relu_reads + 2, "concat": len(cell.concat), "out": list(out),
            "state": [out[0], int(out[1]) // max(len(cell.concat), 1)] + list(out[2:]),
            "in": list(block_shape)}


def _glue_part(spec: dict, device: str) -> Part:
    state = torch.randn(spec["state"], device=device)
    inputs = torch.randn(spec["in"], device=device)
    concat = [state] * spec["concat"]

    def run():
        with torch.no_grad():
            for _ in range(spec["relus"]):
                inputs.relu()
            for _ in range(spec["blocks"]):
                state + state
            return torch.cat(concat, 1)
    key = f"glue:{spec['blocks']}:{spec['relus']}:{spec['concat']}:{_shape_key([state, inputs])}"
    return Part(key, run)


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


def cells_and_filters(arch: str) -> Tuple[int, int]:
    """``arch`` read as NASNet-A's N@F: (normal cells per stage, filters of the first stage). Every
    cell is sized by these two numbers, so cells with another concat width compare at equal filters."""
    from ..modeling.layout import parse_arch

    return parse_arch(arch, genotypes.get("nasnet_a"))


def network(genotype, arch: str, size: Tuple[int, int], num_classes: int = 1000, **options) -> nn.Module:
    """The NASNet whose latency is predicted (eval mode, no aux head, no drop path)."""
    num_cells, filters = cells_and_filters(arch)
    return build_nasnet(genotype, num_cells=num_cells, num_conv_filters=filters, num_classes=num_classes,
                        img_size=max(size), aux_head=False, **options).eval()


# What is timed, as a table of kind -> module (imported on use, as the search's tasks are): a network
# string is KIND or KIND:SPEC. The module provides ``latency_check(spec)`` (one line for a bad spec),
# ``latency_parts(genotype, arch, size, batch, device, spec) -> [Part]`` and ``latency_forward(...)
# -> run()`` (the end-to-end forward the parts add up to). "detector:CONFIG" is the Faster R-CNN FPN
# of a shipped (or given) config around the cell: backbone cells, FPN, RPN and ROI heads.
NETWORKS = {
    CLASSIFIER: "nasnet_det.search.latency",
    "detector": "nasnet_det.detection.latency",
}


def load_network(network: str):
    """(module, spec) of a network string; an unknown kind or a bad spec is one line."""
    kind, _, spec = str(network).partition(":")
    if kind not in NETWORKS:
        raise LatencyError(f"latency network {network!r}: use one of {', '.join(NETWORKS)} "
                           "(detector:CONFIG, e.g. detector:nasnet_a_mobile_fpn_frcnn.yaml)")
    module = importlib.import_module(NETWORKS[kind])
    module.latency_check(spec)
    return module, spec


def latency_check(spec: str) -> None:
    if spec:
        raise LatencyError(f"latency network 'classifier:{spec}': the classifier takes no spec; use 'classifier'")


def latency_parts(genotype, arch: str, size: Tuple[int, int], batch: int, device: str, spec: str = "") -> List[Part]:
    """The classifier's parts: stem, cells, pool and classifier of the NASNet at ``arch``."""
    return net_parts(network(genotype, arch, size).to(device), size, batch, device)


def latency_forward(genotype, arch: str, size: Tuple[int, int], batch: int, device: str, spec: str = ""):
    net = network(genotype, arch, size).to(device)
    x = torch.randn(batch, 3, *size, device=device)

    def run():
        with torch.no_grad():
            return net(x)
    return run


def network_parts(genotype, arch: str, size: Tuple[int, int], batch: int, device: str,
                  network: str = CLASSIFIER) -> List[Part]:
    module, spec = load_network(network)
    return module.latency_parts(genotypes.get(genotype), arch, tuple(size), batch, device, spec)


def predict(table: LatencyTable, genotype, arch: str, measure_missing: bool = True,
            network: str = CLASSIFIER) -> float:
    """Predicted milliseconds of one forward of ``network`` (the NASNet classifier, or a detector)
    around ``genotype`` at ``arch`` on the table's device."""
    device = table.device if table.local else "cpu"  # a carried table: shapes only, on this machine
    return table.predict_parts(network_parts(genotype, arch, table.size, table.batch, device, network), measure_missing)


class LatencyReward:
    """MnasNet's reward, ACC x (LAT / T) ^ w, with LAT the predicted latency of the child's cell at
    ``latency_arch`` and ``latency_size`` (a SearchConfig's ``latency_*`` settings); with
    ``latency_limit`` a hard limit instead: a child over the target gets the failure reward.

    The table is ``latency_table`` (carried from the target device) or ``OUT/latency_table.jsonl``,
    timed here on the fly as children need parts."""

    def __init__(self, cfg, out: str):
        size = (cfg.latency_size, cfg.latency_size)
        self.cfg, self.arch = cfg, cfg.latency_arch
        self.network = getattr(cfg, "latency_network", CLASSIFIER)
        cells_and_filters(self.arch)  # a bad N@F is one line at start
        load_network(self.network)  # and a bad network
        if cfg.latency_table:
            if not os.path.isfile(cfg.latency_table):
                raise LatencyError(f"--latency-table {cfg.latency_table}: no such file (build one with "
                                   "nasnet-det latency-table)")
            self.table = LatencyTable(cfg.latency_table, "cpu", size, 1, self.arch, carried=True, network=self.network)
        else:
            self.table = LatencyTable(os.path.join(out, "latency_table.jsonl"), "cpu", size, 1, self.arch,
                                      network=self.network)

    def fastest(self, count: int = 20) -> Tuple[str, float]:
        """The fastest of the published cells and ``count`` random ones (the target's sanity check)."""
        pool = [genotypes.get(n) for n in genotypes.names()] + space_cells(count, seed=12345)
        return min(((g.name, predict(self.table, g, self.arch, network=self.network)) for g in pool),
                   key=lambda x: x[1])

    def check_target(self) -> None:
        name, ms = self.fastest()
        if ms > self.cfg.latency_target:
            raise LatencyError(f"--latency-target {self.cfg.latency_target:g} ms: no cell meets it at "
                               f"{self.arch}, {self.table.size[0]} px; the fastest of those sampled ({name}) predicts "
                               f"{ms:.1f} ms: raise the target, or scale the network down (--latency-arch, "
                               "nasnet-det fit-budget)")

    def info(self, genotype) -> dict:
        """The child's predicted latency, parameters and mult-adds at ``latency_arch``."""
        from ..modeling.complexity import count_mult_adds, count_params

        g = genotypes.get(genotype)
        net = network(g, self.arch, self.table.size)
        return {"latency_ms": predict(self.table, g, self.arch, network=self.network), "latency_params": count_params(net),
                "mult_adds": count_mult_adds(net, self.table.size[0])}

    def reward(self, accuracy: float, latency_ms: float) -> float:
        ratio = latency_ms / self.cfg.latency_target
        if self.cfg.latency_limit:
            return accuracy if ratio <= 1 else self.cfg.failure_reward
        return accuracy * ratio ** self.cfg.latency_weight


def measure(genotype, arch: str, size: Tuple[int, int], device: str = "cpu", batch: int = 1, warmup: int = 3,
            repeats: int = 15, network: str = CLASSIFIER) -> float:
    """Measured milliseconds of one end-to-end forward of ``network`` (the median of ``repeats``)."""
    module, spec = load_network(network)
    run = module.latency_forward(genotypes.get(genotype), arch, tuple(size), batch, device, spec)
    return time_part(run, device, warmup, repeats)


def space_cells(count: int, seed: int = 0) -> List[genotypes.Genotype]:
    """``count`` random cells of the NASNet space (the table's coverage and the model's check)."""
    from .space import SearchSpace

    space, rng = SearchSpace(), random.Random(seed)
    return [space.decode(space.random(rng), name=f"random_{seed}_{i}") for i in range(count)]


def build_table(path: str, arch: str, size: Tuple[int, int], device: str = "cpu", batch: int = 1, cells: int = 40,
                seed: int = 0, progress: bool = True, warmup: int = 3, repeats: int = 15, correct: int = 10,
                network: str = CLASSIFIER) -> LatencyTable:
    """Time every part the published cells and ``cells`` random cells of the space use at ``arch``
    and ``size``: each op at each cell position and stride, the input convs at the widths those
    cells give them, the stem, the head and the glue; then ``correct`` of those networks end to end, for
    the table's correction (0: none, the raw sum). Resumable: parts already in ``path`` are kept."""
    from tqdm import tqdm

    load_network(network)  # a bad network is one line before anything is timed
    table = LatencyTable(path, device, size, batch, arch, warmup=warmup, repeats=repeats, network=network)
    pool = [genotypes.get(n) for n in genotypes.names()] + space_cells(cells, seed)
    for g in tqdm(pool, desc=f"latency table {network} {arch} @ {size[0]}x{size[1]} {device}", unit="cell",
                  disable=not progress, dynamic_ncols=True):
        table.measure(network_parts(g, arch, size, batch, device, network))
    if correct and table.correction is None:
        rows = []
        for g in tqdm(pool[:correct], desc="end-to-end for the correction", unit="network", disable=not progress,
                      dynamic_ncols=True):
            parts = network_parts(g, arch, size, batch, device, network)
            rows.append((sum(table.entries[p.key] for p in parts), len(parts),
                         measure(g, arch, size, device, batch, warmup, repeats, network)))
        table.fit_correction(rows)
    return table


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
