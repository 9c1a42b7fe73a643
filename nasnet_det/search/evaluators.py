"""Evaluators: how a child is scored, run inside the search's workers (module-level functions, so
local processes and Ray tasks reach them by reference).

An evaluator is ``f(genotype_dict, settings) -> {"reward": float, ...}``, ``settings`` being the
search's configuration (``search.json``). ``--evaluator`` names one of :data:`EVALUATORS`:
``method`` (the default: each child scored as ``--method`` says: trained (the paper's reward), with
the supernet's weights through its task (:mod:`.tasks`), or by a proxy), ``synthetic`` (a cheap
pretend reward, for tests and driver benchmarks); or a user's ``module:function``.
"""
from __future__ import annotations

import importlib
import time
from typing import Callable

from .. import genotypes
from .. import plugins
from ..errors import PluginError, SearchError
from ..registry import Registry
from .child import train_child
from .config import proxy_methods, search_config


def sep_conv_fraction(genotype) -> float:
    """A cheap synthetic reward (no child training): the fraction of separable convs in the cells.
    Learners should raise it well above random search's ~3/13."""
    ops = [op for cell in (genotype.normal, genotype.reduction) for b in cell.blocks for op in b.ops]
    return sum(op.startswith("sep_conv") for op in ops) / len(ops)


def synthetic_evaluator(genotype_dict: dict, settings: dict) -> dict:
    """A cheap pretend reward (the fraction of separable convs), after ``synthetic_seconds``."""
    start = time.perf_counter()
    time.sleep(float(settings.get("synthetic_seconds", 0.0)))  # a user's evaluator may pass partial settings
    reward = sep_conv_fraction(genotypes.Genotype.from_dict(genotype_dict))
    return {"reward": reward, "seconds": time.perf_counter() - start}


def training_evaluator(genotype_dict: dict, settings: dict) -> dict:
    """The paper's reward: held-out accuracy of the child trained as ``settings["child"]`` says."""
    return train_child(genotype_dict, search_config(settings).child)


def resolve_evaluator(name: str) -> Callable[[dict, dict], dict]:
    if name in EVALUATORS:
        return EVALUATORS.get(name)
    module, _, function = name.partition(":")
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError, ValueError) as e:
        raise SearchError(f"evaluator {name!r}: expected {', '.join(EVALUATORS.names())} or module:function "
                          f"({e})") from None


_SCORERS: dict = {}  # per worker: (method, child settings) -> its scorer (which keeps the proxies' minibatch)


def proxy_evaluator(genotype_dict: dict, settings: dict) -> dict:
    """A child's reward without training: a zero-cost proxy or a size baseline of :mod:`.ranking`."""
    from .ranking import RankConfig, Scorer

    cfg = search_config(settings)
    key = (cfg.method, repr(cfg.child))
    if key not in _SCORERS:
        _SCORERS.clear()
        _SCORERS[key] = Scorer(RankConfig(cfg.method, cfg.child, space=cfg.space.describe()))
    result = _SCORERS[key](genotypes.Genotype.from_dict(genotype_dict))
    return {"reward": result["score"], "seconds": result["seconds"]}


def _check_vocabulary(genotype_dict: dict) -> None:
    """A child with an op or combine this process does not know stops the search (PluginError): every
    other child using it would fail too, each scored as a failure, and the search would steer away."""
    cells = [genotype_dict.get(c) or {} for c in ("normal", "reduction")]
    names = {n for cell in cells for block in cell.get("blocks", ()) if isinstance(block, dict)
             for n in [*block.get("ops", ()), block.get("combine", "add")] if isinstance(n, str)}
    unknown = sorted(n for n in names if n not in genotypes.OPS and n not in genotypes.COMBINES)
    if unknown:
        raise PluginError(f"a search worker does not know {', '.join(map(repr, unknown))}: register it in a module "
                          "and name that module with --plugin MODULE (SearchConfig.plugins), so that every worker "
                          "imports it; then rerun with --resume --plugin MODULE")


def run_evaluation(evaluator: str, genotype_dict: dict, settings: dict) -> dict:
    """Score one child in a worker. An evaluator is ``f(genotype_dict, settings)`` returning
    ``{"reward": float, ...}``; ``settings`` is the search's configuration (``search.json``).
    The ``method`` evaluator scores as ``--method`` says."""
    plugins.load(settings.get("plugins", ()))  # once per worker process: a user's ops, proxies, evaluators
    _check_vocabulary(genotype_dict)
    result = resolve_evaluator(evaluator)(genotype_dict, settings)
    reward = float(result["reward"])
    if reward != reward:  # NaN
        raise FloatingPointError("reward is NaN")
    return {**result, "reward": reward}




def method_evaluator(genotype_dict: dict, settings: dict) -> dict:
    """The child scored as ``--method`` says: with the supernet's weights (``oneshot``), by a proxy
    or a size baseline, or trained (``per-child``, the paper's reward)."""
    method = settings.get("method", "per-child")
    if method == "oneshot":
        from .oneshot import oneshot_evaluator

        return oneshot_evaluator(genotype_dict, settings)
    if method in proxy_methods():
        return proxy_evaluator(genotype_dict, settings)
    return training_evaluator(genotype_dict, settings)


EVALUATORS = Registry("evaluator", SearchError)
EVALUATORS.register("method", method_evaluator, help="each child scored as --method says (the default)")
EVALUATORS.register("synthetic", synthetic_evaluator, help="the sep-conv fraction: a pretend reward for tests")
EVALUATORS.register("train", method_evaluator, hidden=True, help="what search.json files of 0.3 call 'method'")
