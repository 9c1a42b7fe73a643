"""MnasNet's latency reward for the search (``--latency-target``)."""
from __future__ import annotations

import os
from typing import Tuple

from ... import genotypes
from .classifier import classifier_net
from .networks import load_network, predict, space_cells
from .parts import cells_and_filters
from .table import CLASSIFIER, LatencyError, LatencyTable

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
        from ...modeling.complexity import count_mult_adds, count_params

        g = genotypes.get(genotype)
        net = classifier_net(g, self.arch, self.table.size)
        return {"latency_ms": predict(self.table, g, self.arch, network=self.network), "latency_params": count_params(net),
                "mult_adds": count_mult_adds(net, self.table.size[0])}

    def reward(self, accuracy: float, latency_ms: float) -> float:
        ratio = latency_ms / self.cfg.latency_target
        if self.cfg.latency_limit:
            return accuracy if ratio <= 1 else self.cfg.failure_reward
        return accuracy * ratio ** self.cfg.latency_weight
