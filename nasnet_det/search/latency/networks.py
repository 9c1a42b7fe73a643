"""What is timed, as a registry of network kinds, and what the kinds share: the parts of a network
string, a prediction from a table, an end-to-end measurement, and building a table."""
from __future__ import annotations

import random
from typing import List, Tuple

from ... import genotypes
from ...registry import Registry
from .table import CLASSIFIER, LatencyError, LatencyTable, Part, time_part

# What is timed, as a registry of kind -> module (lazy entries, as the search's tasks are): a network
# string is KIND or KIND:SPEC. The module provides ``latency_check(spec)`` (one line for a bad spec),
# ``latency_parts(genotype, arch, size, batch, device, spec) -> [Part]`` and ``latency_forward(...)
# -> run()`` (the end-to-end forward the parts add up to). "detector:CONFIG" is the Faster R-CNN FPN
# of a shipped (or given) config around the cell: backbone cells, FPN, RPN and ROI heads.
NETWORKS = Registry("latency network", LatencyError)
NETWORKS.register_lazy(CLASSIFIER, "nasnet_det.search.latency.classifier", help="the NASNet classifier")
NETWORKS.register_lazy("detector", "nasnet_det.detection.latency", help="detector:CONFIG, the config's Faster R-CNN")


def load_network(network: str):
    """(module, spec) of a network string; an unknown kind or a bad spec is one line."""
    kind, _, spec = str(network).partition(":")
    if kind not in NETWORKS:
        raise LatencyError(f"latency network {network!r}: use one of {', '.join(NETWORKS)} "
                           "(detector:CONFIG, e.g. detector:nasnet_a_mobile_fpn_frcnn.yaml)")
    module = NETWORKS.get(kind)
    module.latency_check(spec)
    return module, spec


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


def measure_forward(genotype, arch: str, size: Tuple[int, int], device: str = "cpu", batch: int = 1, warmup: int = 3,
            repeats: int = 15, network: str = CLASSIFIER) -> float:
    """Measured milliseconds of one end-to-end forward of ``network`` (the median of ``repeats``)."""
    module, spec = load_network(network)
    run = module.latency_forward(genotypes.get(genotype), arch, tuple(size), batch, device, spec)
    return time_part(run, device, warmup, repeats)


def space_cells(count: int, seed: int = 0) -> List[genotypes.Genotype]:
    """``count`` random cells of the NASNet space (the table's coverage and the model's check)."""
    from ..space import SearchSpace

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
                         measure_forward(g, arch, size, device, batch, warmup, repeats, network)))
        table.fit_correction(rows)
    return table
