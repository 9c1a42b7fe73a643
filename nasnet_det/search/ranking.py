"""Rank cells without a search: score a list of genotypes with any ranking method, and measure a
ranking against a ground truth.

A method maps a genotype to a score (larger: expected better). :func:`methods` lists them, name
-> (scorer, what it is and where it comes from):

==============  ================================================================================
``params``      the child's parameter count (the baseline every method must beat)
``flops``       the child's mult-adds at the child's image size (fvcore, conv + linear)
``prior``       the cell's op mix and wiring through a linear model fitted to NAS-Bench-301 (:mod:`.prior`)
``synflow``     zero-cost proxies (:mod:`.proxies`, each with its source) on one minibatch of the
``naswot``      child's training data, the child network untrained and seeded
``jacob_cov``
``snip``
``grad_norm``
``vote``        the mean rank under synflow, jacob_cov and snip (Abdelfattah et al. 2021)
combinations    :data:`COMBINATIONS`: the normal CDF of the mean of the signed components' z-scores, each against
                ``reference`` random cells of the space (``docs/search.md`` says how they were chosen)
``per-child``   the paper's reward: the child trained at ``child``'s budget, mean over ``seeds``
``oneshot``     held-out accuracy with the weights of a trained ``supernet.pt``
==============  ================================================================================

The networks are the search's children (:func:`nasnet_det.search.child.child_options`), so a
method scores the network a search with the same ``child`` settings would train.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .. import genotypes
from ..errors import SearchError
from .child import ChildConfig, child_data, child_options, train_child
from .methods import COMBINATIONS, METHOD_HELP, method_help, methods  # noqa: F401  (the API)
from .proxies import PROXIES, VOTE, vote

LOG_SCALE = ("grad_norm", "snip", "synflow")


def on_scale(name: str, value: float) -> float:
    """A component's value on the scale its z-score is taken at (the log for :data:`LOG_SCALE`)."""
    if name in LOG_SCALE:
        return math.log(value) if value > 0 else -math.inf
    return value


def combined(z: Sequence[float]) -> float:
    """A combination's score from its signed z-scores: the normal CDF of their mean, in (0, 1) like
    an accuracy, so that a latency target's ACC x (LAT / T) ^ w reads it as it reads accuracies."""
    if not all(math.isfinite(v) for v in z):
        return 0.0
    return 0.5 * (1.0 + math.erf(sum(z) / len(z) / math.sqrt(2.0)))


@dataclass
class RankConfig:
    method: str = "prior+gradnorm"
    child: ChildConfig = field(default_factory=ChildConfig)
    seeds: int = 1  # per-child: the score is the mean over seeds 0..K-1
    supernet: Optional[str] = None  # oneshot: the supernet.pt to score with
    proxy_batch: int = 64  # zero-cost proxies: images in their one minibatch
    reference: int = 16  # combinations: random cells of the space whose scores set each component's z-scale
    space: Optional[dict] = None  # combinations: the space of the reference cells (SearchSpace.describe(); None: the paper's)

    def __post_init__(self):
        if self.method not in methods():
            raise SearchError(f"unknown ranking method {self.method!r}; use one of {', '.join(methods())}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise SearchError(f"--seeds must be a positive integer, got {self.seeds!r}")
        if isinstance(self.proxy_batch, bool) or not isinstance(self.proxy_batch, int) or self.proxy_batch < 2:
            raise SearchError(f"--proxy-batch must be an integer of at least 2 images, got {self.proxy_batch!r}")
        if self.method == "oneshot" and not self.supernet:
            raise SearchError("--method oneshot needs --supernet PATH (a search's OUT/supernet.pt)")


def child_network(genotype: genotypes.Genotype, child: ChildConfig, num_classes: int, img_size: int):
    from ..modeling import build_nasnet

    torch.manual_seed(child.seed)
    return build_nasnet(genotype, **child_options(child, num_classes, img_size))


def proxy_batch(child: ChildConfig, size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The proxies' minibatch: the first ``size`` training images in a seeded order."""
    data = child_data(child.dataset, child.img_size)
    g = torch.Generator().manual_seed(child.seed)
    idx = torch.randperm(len(data.train), generator=g)[:size].tolist()
    torch.manual_seed(child.seed)
    xs, ys = zip(*(data.train[i] for i in idx))
    return torch.stack(xs), torch.as_tensor(ys)


class Scorer:
    """Scores one genotype at a time with one method; returns ``{"score", "seconds", ...}``."""

    def __init__(self, cfg: RankConfig):
        self.cfg = cfg
        self._batch = None
        self._oneshot = None
        self._scales = None  # combinations: component -> (mean, std) over the reference cells

    def __call__(self, genotype: genotypes.Genotype) -> dict:
        torch.set_num_threads(max(1, self.cfg.child.threads))
        start = time.perf_counter()
        out = self._score(genotype)
        out["seconds"] = time.perf_counter() - start
        return out

    def _data(self):
        data = child_data(self.cfg.child.dataset, self.cfg.child.img_size)
        return data.num_classes, data.img_size

    def _score(self, genotype: genotypes.Genotype) -> dict:
        if self.cfg.method in COMBINATIONS:
            return self._combination(genotype)
        return self._single(self.cfg.method, genotype)

    def _component(self, name: str, genotype: genotypes.Genotype) -> float:
        return on_scale(name, self._single(name, genotype)["score"])

    def scales(self) -> Dict[str, Tuple[float, float]]:
        """A combination's z-scales: per component, (mean, std) over the reference cells, on its scale
        (computed once per scorer)."""
        import random
        import statistics

        from .space import SearchSpace

        if self._scales is None:
            space = SearchSpace.from_description(self.cfg.space) if self.cfg.space else SearchSpace()
            rng = random.Random(12345)
            cells = [space.decode(space.random(rng)) for _ in range(self.cfg.reference)]
            self._scales = {}
            for name, _ in COMBINATIONS[self.cfg.method]:
                values = [v for v in (self._component(name, c) for c in cells) if math.isfinite(v)]
                if len(values) < 2:
                    raise SearchError(f"{self.cfg.method}: {name} is not finite on the reference cells")
                self._scales[name] = (statistics.fmean(values), statistics.pstdev(values) or 1.0)
        return self._scales

    def combine(self, components: Dict[str, float]) -> float:
        """The combination's score of its components' values (each on its scale, :func:`on_scale`)."""
        scales = self.scales()
        return combined([sign * (components[name] - scales[name][0]) / scales[name][1]
                         for name, sign in COMBINATIONS[self.cfg.method]])

    def _combination(self, genotype: genotypes.Genotype) -> dict:
        components = {name: self._component(name, genotype) for name, _ in COMBINATIONS[self.cfg.method]}
        return {"score": self.combine(components), "components": components}

    def _single(self, method: str, genotype: genotypes.Genotype) -> dict:
        child = self.cfg.child
        if method == "params":
            net = child_network(genotype, child, *self._data())
            return {"score": float(sum(p.numel() for p in net.parameters()))}
        if method == "prior":
            from .prior import score

            return {"score": score(genotype) / 100.0}  # the predicted accuracy, as a fraction like per-child's
        if method == "flops":
            from ..modeling.complexity import count_mult_adds

            num_classes, size = self._data()
            return {"score": float(count_mult_adds(child_network(genotype, child, num_classes, size), size))}
        if method in PROXIES or method == "vote":
            if self._batch is None:
                self._batch = proxy_batch(child, self.cfg.proxy_batch)
            names = VOTE if method == "vote" else (method,)
            net = child_network(genotype, child, *self._data())
            scores = {}
            for name in names:
                torch.manual_seed(child.seed)
                value = PROXIES[name](copy.deepcopy(net), *self._batch)
                scores[name] = value if math.isfinite(value) else -math.inf
            # vote is a rank over the whole list: the list's scorer fills it in (score_cells)
            return {"score": scores[method] if method != "vote" else None, "proxies": scores}
        if method == "per-child":
            rewards = [train_child(genotype.to_dict(), dataclasses.replace(child, seed=child.seed + s))["reward"]
                       for s in range(self.cfg.seeds)]
            return {"score": sum(rewards) / len(rewards), "rewards": rewards}
        if method == "oneshot":
            from .tasks.classification import load_supernet_for_scoring, score_child

            if self._oneshot is None:
                self._oneshot = load_supernet_for_scoring(self.cfg.supernet, child)
            net, data, calibration = self._oneshot
            net.check(genotype)
            return {"score": score_child(net, genotype, data, calibration)}
        raise AssertionError(method)


def finish_scores(method: str, records: List[dict]) -> List[dict]:
    """Scores that need the whole list (``vote``)."""
    if method == "vote" and records:
        for record, v in zip(records, vote([r["proxies"] for r in records])):
            record["score"] = v
    return records


# ------------------------------------------------------------------------------------------------
# How good a ranking is

def rank_metrics(scores: Sequence[float], truth: Sequence[float], top: float = 0.1) -> Dict[str, float]:
    """Kendall tau, Spearman rho, precision of the top ``top`` fraction (the share of the method's
    top cells that are in the truth's top), and the top-1 pick's regret (best truth minus the
    pick's truth) and percentile (the share of cells the pick beats or ties)."""
    from scipy.stats import kendalltau, spearmanr

    if len(scores) != len(truth) or len(scores) < 3:
        raise SearchError(f"ranking metrics need at least 3 scored cells with a truth, got {len(scores)}")
    n = len(scores)
    k = max(1, round(top * n))
    by_score = sorted(range(n), key=lambda i: scores[i], reverse=True)
    by_truth = sorted(range(n), key=lambda i: truth[i], reverse=True)
    pick = by_score[0]
    tau, rho = kendalltau(scores, truth)[0], spearmanr(scores, truth)[0]
    return {"cells": n, "kendall_tau": float(tau), "spearman_rho": float(rho),
            "top_precision": len(set(by_score[:k]) & set(by_truth[:k])) / k,
            "regret": float(truth[by_truth[0]] - truth[pick]),
            "pick_percentile": sum(t <= truth[pick] for t in truth) / n}


def format_metrics(m: Dict[str, float]) -> str:
    return (f"Kendall tau {m['kendall_tau']:.3f}, Spearman rho {m['spearman_rho']:.3f}, top-10% precision "
            f"{m['top_precision']:.2f}, top-1 regret {m['regret']:.4f} (pick at the {100 * m['pick_percentile']:.0f}th "
            f"percentile), {m['cells']} cells")
