"""Multi-fidelity search by successive halving, as the paper did (20,000 children for 20 epochs,
then the top 250 to convergence) and as Hyperband's rungs do.

``--promote RUNG [RUNG ...]``: the search itself (the strategy, ``--budget`` children at the
search's own method and child settings) is rung 0. Each RUNG then re-scores the best
``--promote-keep`` share (default a third, at least one) of the previous rung's children at a
higher fidelity. A RUNG is ``KEY=VALUE[,KEY=VALUE...]`` over the search's settings: ``method``
(any reward, e.g. ``method=per-child``) and any child field (``epochs=4``,
``num_conv_filters=16``, ``img_size=16``, ``dataset=digits``...); what it does not name stays as in
the rung before it.

Rung k >= 1 is an ordinary search in ``OUT/rung<k>/`` whose strategy is ``replay`` (it asks the
promoted children in the previous rung's order of reward), so workers, Ray, retries, the trial log
and ``--resume`` after ``kill -9`` work in every rung as in any search. ``OUT/genotype.json`` is
the best child of the last rung; ``OUT/promotion.json`` lists each rung's children and rewards.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import List

from ..errors import SearchError
from ..io import write_json, write_text
from .child import ChildConfig

_CHILD_FIELDS = {f.name: f for f in dataclasses.fields(ChildConfig)}
RUNG_KEYS = ("method",) + tuple(_CHILD_FIELDS)


def parse_rung(text: str) -> dict:
    """``"method=per-child,epochs=4"`` -> ``{"method": "per-child", "child": {"epochs": 4}}``."""
    rung: dict = {"child": {}}
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in RUNG_KEYS:
            raise SearchError(f"--promote {text!r}: expected KEY=VALUE[,KEY=VALUE...] with KEY one of "
                              f"{', '.join(RUNG_KEYS)}")
        if key == "method":
            rung["method"] = value
            continue
        kind = _CHILD_FIELDS[key].type
        try:
            if "bool" in str(kind):
                if value.lower() not in ("true", "false"):
                    raise ValueError
                rung["child"][key] = value.lower() == "true"
            elif "int" in str(kind):
                rung["child"][key] = int(value)
            elif "float" in str(kind):
                rung["child"][key] = float(value)
            else:
                rung["child"][key] = value
        except ValueError:
            raise SearchError(f"--promote {text!r}: {key}={value!r} is not {str(kind).replace('Optional[', '').rstrip(']')} "
                              f"(as the child's --child-{key.replace('_', '-')} takes)") from None
    if not rung["child"] and "method" not in rung:
        raise SearchError(f"--promote {text!r}: a rung names at least one KEY=VALUE (e.g. epochs=4)")
    return rung


def rung_configs(cfg) -> list:
    """The settings of rungs 1..K (budget and strategy are filled in when the rung starts)."""
    configs, method, child = [], cfg.method, cfg.child
    for k, text in enumerate(cfg.promote, 1):
        rung = parse_rung(text)
        method = rung.get("method", method)
        try:
            child = dataclasses.replace(child, **rung["child"])
            configs.append(dataclasses.replace(cfg, method=method, child=child, promote=(), budget=1,
                                               out=os.path.join(cfg.out, f"rung{k}"), strategy="replay",
                                               strategy_options={}))
        except SearchError as e:
            raise SearchError(f"--promote {text!r}: {e}") from None
    return configs


def promoted(done: List[dict], keep: float) -> List[dict]:
    """The best ``keep`` share of a rung's children (at least one; failed children never), best
    first; ties broken by the lower child id."""
    ok = sorted((t for t in done if t["status"] == "ok"), key=lambda t: (-t["reward"], t["id"]))
    return ok[: max(1, math.ceil(keep * len(done)))] if ok else []


def run_promoted(cfg, resume: bool, runner) -> List[dict]:
    """Rung 0 (the search), then each promotion rung, each run by ``runner(cfg, resume).run()``
    (:class:`~nasnet_det.search.runner.SearchRunner`, which calls this); returns the last rung's children."""
    from .space import SearchSpace

    done = runner(cfg, resume).run()  # rung 0; its search.json keeps the rungs for --resume
    space = SearchSpace(cfg.num_blocks, cfg.ops, cfg.combines)
    history = [{"rung": 0, "method": cfg.method, "child": dataclasses.asdict(cfg.child),
                "children": [(t["id"], t["reward"]) for t in done]}]
    for k, rung in enumerate(rung_configs(cfg), 1):
        chosen = promoted(done, cfg.promote_keep)
        if not chosen:
            raise SearchError(f"rung {k - 1} has no child that finished: nothing to promote")
        decisions = [space.encode(_genotype(t)) for t in chosen]
        rung = dataclasses.replace(rung, budget=len(chosen), strategy_options={"decisions": decisions})
        started = any(os.path.exists(os.path.join(rung.out, f)) for f in ("state.pt", "trials.jsonl"))
        done = runner(rung, started).run()
        history.append({"rung": k, "method": rung.method, "child": dataclasses.asdict(rung.child),
                        "promoted": [t["id"] for t in chosen], "children": [(t["id"], t["reward"]) for t in done]})
    best = max((t for t in done if t["status"] == "ok"), key=lambda t: t["reward"], default=None)
    if best is not None and cfg.promote:  # the last rung's best is the search's (written atomically)
        with open(os.path.join(cfg.out, f"rung{len(cfg.promote)}", "genotype.json")) as f:
            write_text(os.path.join(cfg.out, "genotype.json"), f.read())
    write_json(os.path.join(cfg.out, "promotion.json"), history)
    return done


def _genotype(trial: dict):
    from .. import genotypes

    return genotypes.Genotype.from_dict(trial["genotype"])


def read_promotion(out: str) -> list:
    with open(os.path.join(out, "promotion.json")) as f:
        return json.load(f)
