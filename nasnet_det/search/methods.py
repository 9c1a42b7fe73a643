"""The ranking methods' table, by name: what ``nasnet-det rank --method`` and ``search --method``
take. Data only (imported by the search's configuration and by :mod:`.ranking`, which scores them):
the methods with their help, the combinations, and each proxy registered with ``@proxy``
(:mod:`.proxies`, a plug-in's included)."""
from __future__ import annotations

from ..errors import SearchError
from ..registry import Registry
from .proxies import PROXIES

METHOD_HELP = {
    "params": "parameter count of the child (baseline)",
    "flops": "mult-adds of the child at its image size (baseline)",
    "prior": "op mix and wiring -> a linear model fitted to NAS-Bench-301's CIFAR-10 accuracies (no data, no training)",
    "synflow": "synaptic flow, data-free (Tanaka et al. 2020; Abdelfattah et al. 2021)",
    "naswot": "log-determinant of the ReLU-code kernel on one minibatch (Mellor et al. 2021)",
    "jacob_cov": "input-Jacobian correlation on one minibatch (Mellor et al. 2020)",
    "snip": "sum |w * dL/dw| on one minibatch (Lee et al. 2019)",
    "grad_norm": "sum of the weights' gradient norms on one minibatch (Abdelfattah et al. 2021)",
    "vote": "mean rank under synflow, jacob_cov and snip (Abdelfattah et al. 2021)",
    "per-child": "held-out accuracy after training at the child budget, mean over --seeds (the paper's reward)",
    "oneshot": "held-out accuracy with the weights of a trained supernet.pt (--supernet)",
}
# Combinations: name -> ((component method, sign), ...). The score is the normal CDF of the mean of
# the components' signed z-scores (:func:`nasnet_det.search.ranking.combined`); each z-score is taken against RankConfig.reference random cells of the space,
# scored once per scorer (grad_norm, snip and synflow on a log scale, where their spread is).
# Chosen on one half of the LaMCTS dev sample among a list of candidates, reported on the other
# half (docs/search.md, "Ranking against real accuracies"); nothing is fitted to LaMCTS.
# A plug-in adds one with COMBINATIONS.register(name, ((method, sign), ...)).
COMBINATIONS = Registry("combination of ranking methods", SearchError)
COMBINATIONS.register("prior+gradnorm", (("prior", 1), ("grad_norm", -1)))
COMBINATIONS.register("naswot+gradnorm", (("naswot", 1), ("grad_norm", -1)))
COMBINATIONS.register("prior+naswot+gradnorm", (("prior", 1), ("naswot", 1), ("grad_norm", -1)))


def _combination_help(parts) -> str:
    return "normal CDF of the mean z-score of " + ", ".join(("minus " if sign < 0 else "") + m for m, sign in parts) + \
        " (z against random cells of the space)"


def methods() -> tuple:
    """Every ranking method: the table above, the combinations, then each proxy registered with
    ``@proxy`` (a plug-in's, ``--plugin MODULE``, whose help is its docstring's first line)."""
    listed = tuple(METHOD_HELP) + tuple(COMBINATIONS.names())
    return listed + tuple(name for name in PROXIES if name not in listed)


def method_help(name: str) -> str:
    if name in METHOD_HELP:
        return METHOD_HELP[name]
    if name in COMBINATIONS:
        return _combination_help(COMBINATIONS.get(name))
    return PROXIES.help(name) or "a registered proxy"
