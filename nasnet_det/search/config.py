"""The search's configuration: :class:`SearchConfig` (what ``search.json`` holds) and the one-shot
schedule in it (:class:`OneShotConfig`). The driver builds it from the command line; every worker
rebuilds the same object from the settings it is handed (:func:`search_config`), once.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Optional, Tuple

from .. import genotypes, plugins
from ..errors import SearchError, require_ints
from ..io import resume_differences
from .child import ChildConfig
from .methods import methods
from .space import SearchSpace
from .strategies import STRATEGIES
from .supernet import check_shareable, parse_recipe
from .tasks import TASKS, load_task

BACKENDS = ("local", "ray")
TRAINED = ("per-child", "oneshot")  # the methods that train: 20 children unless --budget says otherwise
NO_BUDGET_DEFAULT = 200  # children of the methods without training (milliseconds to a second each)


def proxy_methods() -> tuple:
    """The methods that score a child without training it: ``nasnet-det rank``'s methods
    (:func:`nasnet_det.search.ranking.methods`, a plug-in's ``@proxy`` included), but the trained
    ones and ``vote`` (a rank over a whole list, not a score of one child)."""
    return tuple(m for m in methods() if m not in TRAINED and m != "vote")


def search_methods() -> tuple:
    """What ``--method`` takes."""
    return TRAINED + proxy_methods()
SAMPLING = ("uniform", "fair")


@dataclass(frozen=True)
class OneShotConfig:
    """The supernet's training schedule and how children are scored with its weights."""

    epochs: int = 10  # uniform supernet training before the first child is scored
    round_steps: Optional[int] = None  # steps trained after each round; None: ppo one epoch, others 0
    round_children: int = 20  # children scored per round (ppo's default update batch)
    round_lr: float = 0.1  # the rounds' learning rate, as a fraction of child.lr (where the warm-up ends)
    calibration_batches: int = 2  # training batches that re-estimate a child's BN statistics
    metric: str = "AP50"  # the reward's metric, where the task has several (detection: AP50 or AP)
    share_inputs: bool = False  # a block's candidate ops on block outputs share weights (ENAS: one set per input)
    recipe: str = "all"  # the supernet's initialisation (supernet.RECIPE): all, none or a comma list of parts
    sampling: str = "uniform"  # warm-up paths: uniform (SPOS) or fair (FairNAS: every op once per step)
    probes: int = 4  # random paths whose inherited accuracy is recorded per epoch (0: none; each is one held-out pass)

    def __post_init__(self):
        require_ints(self, dict(epochs=0, round_steps=0, round_children=1, calibration_batches=1, probes=0), SearchError,
                     "oneshot ", optional=("round_steps",))
        if not 0 < self.round_lr <= 1:
            raise SearchError(f"oneshot round_lr must be in (0, 1], got {self.round_lr}")
        parse_recipe(self.recipe)
        if self.sampling not in SAMPLING:
            raise SearchError(f"oneshot sampling must be one of {', '.join(SAMPLING)}, got {self.sampling!r}")

    def steps_per_round(self, strategy: str, steps_per_epoch: int) -> int:
        if self.round_steps is not None:
            return self.round_steps
        return steps_per_epoch if strategy == "ppo" else 0


@dataclass
class SearchConfig:
    """Everything a search is run with; ``search.json`` holds it (:meth:`to_dict`)."""

    strategy: str = "ppo"
    # "prior+gradnorm" (the default: the best ranking of public full-scale CIFAR-10 accuracies measured here,
    # docs/search.md), "per-child" (each child trained on its own), "oneshot" (shared weights), or another
    # method that scores children without training (proxy_methods(): prior, params, flops, synflow, ...)
    method: str = "prior+gradnorm"
    task: str = "classification"  # the reward: "classification" accuracy or "detection" AP (oneshot)
    budget: Optional[int] = None  # children; if not given: 200 for the methods without training, 20 for per-child and oneshot
    workers: int = 2
    backend: str = "local"  # "local" or "ray"
    ray_address: Optional[str] = None  # None: start a local Ray; "auto" or host:port: join a cluster
    gpus_per_child: float = 0.0  # Ray: GPUs requested per child (1 on a GPU cluster)
    out: str = "runs/search"
    seed: int = 0
    retries: int = 1
    failure_reward: float = 0.0
    top_k: int = 10
    num_blocks: int = 5
    ops: Tuple[str, ...] = genotypes.PAPER_OPS
    combines: Tuple[str, ...] = ("add",)
    strategy_options: dict = field(default_factory=dict)  # e.g. {"lr": 0.003} or {"population_size": 50}
    # "method" (each child scored by --method: trained, the supernet's weights, or a proxy), "synthetic"
    # (the sep-conv fraction, for tests and driver benchmarks) or "module:function"
    evaluator: str = "method"
    child: ChildConfig = field(default_factory=ChildConfig)
    oneshot: OneShotConfig = field(default_factory=OneShotConfig)
    synthetic_seconds: float = 0.0  # the synthetic evaluator's pretend training time
    progress: bool = True
    # LAT: the child's predicted latency at latency_arch and latency_size on this CPU, or from latency_table
    latency_target: Optional[float] = None  # T in ms: the reward becomes MnasNet's ACC x (LAT / T) ^ w (None: ACC)
    latency_table: Optional[str] = None  # a table from nasnet-det latency-table (e.g. measured on the target device)
    latency_weight: float = -0.07  # w: MnasNet's soft constraint
    latency_limit: bool = False  # a hard limit instead: a child over the target gets failure_reward
    latency_arch: str = "4@1056"  # N@F (NASNet-A's reading) at which the cells' latency is predicted
    latency_size: int = 224  # input size (square, px) of the latency prediction
    # what is timed: "classifier" (the NASNet) or "detector:CONFIG" (the config's Faster R-CNN FPN around the cell)
    latency_network: str = "classifier"
    # successive halving (search/promote.py): rungs after the search, each KEY=VALUE[,...] over method and child
    promote: Tuple[str, ...] = ()
    promote_keep: float = 1 / 3  # the share of a rung's children promoted to the next rung
    # modules imported first here and in every worker (--plugin): a user's ops, proxies, strategies, evaluators
    plugins: Tuple[str, ...] = ()

    def __post_init__(self):
        plugins.load(self.plugins)  # their names are valid choices below
        if self.evaluator == "train":
            self.evaluator = "method"  # what search.json files of 0.3 call it
        STRATEGIES.check(self.strategy)
        if self.backend not in BACKENDS:
            raise SearchError(f"unknown backend {self.backend!r}; use one of {', '.join(BACKENDS)}")
        if self.method not in search_methods():
            raise SearchError(f"unknown method {self.method!r}; use one of {', '.join(search_methods())}")
        if self.budget is None:
            self.budget = 20 if self.method in TRAINED else NO_BUDGET_DEFAULT
        TASKS.check(self.task)
        if self.method == "oneshot":
            check_shareable(self.combines)
        load_task(self.task).check(self)
        require_ints(self, dict(budget=1, workers=1, retries=0, top_k=1, num_blocks=1), SearchError)
        if self.latency_target is not None and not self.latency_target > 0:
            raise SearchError(f"latency_target must be a positive number of ms, got {self.latency_target}")
        if self.latency_size < 32 or not self.latency_weight <= 0:
            raise SearchError(f"latency_size must be at least 32 px and latency_weight at most 0, got "
                              f"{self.latency_size} and {self.latency_weight}")
        if self.gpus_per_child < 0 or self.synthetic_seconds < 0:
            raise SearchError("gpus_per_child and synthetic_seconds cannot be negative")
        if not math.isfinite(self.failure_reward):
            raise SearchError(f"failure_reward must be a finite number, got {self.failure_reward}")
        if not 0 < self.promote_keep <= 1:
            raise SearchError(f"promote_keep must be in (0, 1], got {self.promote_keep}")
        if self.promote:
            from .promote import rung_configs

            rung_configs(self)  # a bad rung (an unknown key, method or value) is one line now
        unknown = [op for op in self.ops if op not in genotypes.OPS] + [c for c in self.combines if c not in genotypes.COMBINES]
        if unknown or not self.ops or not self.combines:
            raise SearchError(f"ops/combines: {', '.join(map(repr, unknown)) or 'none given'} "
                              f"(ops: {', '.join(genotypes.OPS)}; combines: {', '.join(genotypes.COMBINES)})")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ops"], d["combines"], d["promote"] = list(self.ops), list(self.combines), list(self.promote)
        d["plugins"] = list(self.plugins)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SearchConfig":
        """Inverse of :meth:`to_dict` (what ``search.json`` holds)."""
        d = dict(d)
        return cls(**{**d, "ops": tuple(d["ops"]), "combines": tuple(d["combines"]), "promote": tuple(d.get("promote", ())),
                      "plugins": tuple(d.get("plugins", ())),
                      "child": ChildConfig(**d["child"]), "oneshot": OneShotConfig(**d.get("oneshot", {}))})

    @property
    def space(self) -> SearchSpace:
        return SearchSpace(self.num_blocks, self.ops, self.combines)


# Settings that a resumed search may change: how much work, and how it is run. Any other setting
# changes what a reward means, and rewards of two settings must not be ranked together.
RESUMABLE = ("budget", "workers", "backend", "ray_address", "gpus_per_child", "out", "progress", "top_k",
             "retries", "child.threads", "promote")


def config_differences(stored: dict, current: dict) -> list:
    """``key stored -> current`` for each setting that differs, except :data:`RESUMABLE` ones."""
    return resume_differences(stored, current, RESUMABLE, keep_whole=("strategy_options",))


def search_config(settings: dict) -> SearchConfig:
    """The :class:`SearchConfig` of the settings a worker is handed (``search.json``'s dict), parsed and
    checked once per worker process however many children it scores."""
    return _parsed(json.dumps(settings, sort_keys=True))


@functools.lru_cache(maxsize=4)
def _parsed(text: str) -> SearchConfig:
    return SearchConfig.from_dict(json.loads(text))

