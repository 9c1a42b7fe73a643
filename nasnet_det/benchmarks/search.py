"""Search throughput: children per second with 1 and K local workers, and with Ray."""
from __future__ import annotations

import os
import statistics
import time
from typing import List, Optional

from ..search.space import SearchSpace


def _children_per_second(trials: List[dict], workers: int) -> float:
    """Steady-state rate: completions after the first wave (which also pays the workers' start-up)."""
    times = sorted(t["finished"] for t in trials if t["final"])
    if len(times) <= workers:
        return float("nan")
    return (len(times) - workers) / (times[-1] - times[workers - 1])


def benchmark_search(budget: int = 10, workers: int = 2, child_options: Optional[dict] = None,
                     out: str = "runs/benchmark_search", log=print) -> dict:
    import shutil

    from ..search.child import ChildConfig
    from ..search.runner import SearchConfig, run_search

    child = ChildConfig(**(child_options or dict(epochs=1, max_train_batches=10, num_conv_filters=8, img_size=16)))
    setups = {"local, 1 worker": ("local", 1), f"local, {workers} workers": ("local", workers),
              f"ray, {workers} workers": ("ray", workers)}
    results = {}
    for name, (backend, k) in setups.items():
        folder = os.path.join(out, name.replace(", ", "_").replace(" ", "_"))
        shutil.rmtree(folder, ignore_errors=True)
        start = time.perf_counter()
        done = run_search(SearchConfig(strategy="random", method="per-child", budget=budget, workers=k, backend=backend, out=folder,
                                       child=child, progress=False))
        results[name] = {"children_per_s": _children_per_second(done, k), "wall_s": time.perf_counter() - start,
                         "mean_child_s": statistics.mean(t["seconds"] for t in done)}
        if backend == "ray":
            import ray
            ray.shutdown()
    one, many, ray_many = (results[n]["children_per_s"] for n in setups)
    log(f"search throughput, {budget} children each (random strategy, child: {child})")
    for name, r in results.items():
        log(f"  {name:<18} {r['children_per_s']:.3f} children/s after the first wave, mean child "
            f"{r['mean_child_s']:.1f} s, wall {r['wall_s']:.0f} s")
    log(f"  speed-up with {workers} local workers: {many / one:.2f}x; ray / local with {workers} workers: {ray_many / many:.2f}")
    return results



def driver_capacity(strategy: str = "ppo", asks: int = 2000, writes: int = 2000, folder: str = "runs/benchmark_driver",
                    log=print) -> dict:
    """What one search driver sustains, the ceiling of a large cluster: proposals per second from the
    strategy (ask + tell, with its updates) and trial-log appends per second (fsync'd JSON lines)."""
    import json

    from .. import genotypes
    from ..search.space import SearchSpace
    from ..search.evaluators import sep_conv_fraction
    from ..search.strategies import build_strategy
    from ..search.trials import TrialLog

    space = SearchSpace()
    learner = build_strategy(strategy, space, seed=0)
    start = time.perf_counter()
    for _ in range(asks):
        proposal = learner.ask()
        learner.tell(proposal, sep_conv_fraction(space.decode(proposal["decisions"])))
    asks_per_s = asks / (time.perf_counter() - start)
    os.makedirs(folder, exist_ok=True)
    log_path = os.path.join(folder, "trials.jsonl")
    if os.path.exists(log_path):
        os.remove(log_path)
    trials = TrialLog(log_path)
    record = {"id": 0, "genotype": genotypes.NASNET_A.to_dict(), "status": "ok", "reward": 0.5, "seconds": 1.0,
              "attempt": 1, "final": True, "error": None}
    start = time.perf_counter()
    for i in range(writes):
        trials.append({**record, "id": i})
    writes_per_s = writes / (time.perf_counter() - start)
    size = os.path.getsize(log_path) / writes
    # the runner rewrites state.pt (strategy state, children in flight) after every ask and result
    from ..search.runner import SearchConfig, SearchRunner

    runner_dir = os.path.join(folder, "runner")
    import shutil

    shutil.rmtree(runner_dir, ignore_errors=True)
    runner = SearchRunner(SearchConfig(strategy=strategy, evaluator="synthetic", out=runner_dir, progress=False))
    for i in range(100):  # a state as large as a run with 100 children in flight
        runner.pending[i] = runner.strategy.ask()
    saves = 200
    start = time.perf_counter()
    for _ in range(saves):
        runner._save()
    saves_per_s = saves / (time.perf_counter() - start)
    log(f"driver capacity ({strategy}): {asks_per_s:.0f} proposals/s (ask + tell); trial log {writes_per_s:.0f} "
        f"appends/s with fsync, {size:.0f} bytes a record; state.pt {saves_per_s:.0f} saves/s "
        f"(2 per child: a completion rate of {saves_per_s / 2:.0f} children/s)")
    return {"strategy": strategy, "proposals_per_s": asks_per_s, "trial_appends_per_s": writes_per_s,
            "bytes_per_record": size, "record_json": len(json.dumps(record)), "state_saves_per_s": saves_per_s}


def proposals_per_second(name: str, space: SearchSpace, reward, asks: int = 200, seed: int = 0,
                         **options) -> float:
    """The strategy's ask/tell rate over its first ``asks`` children (rewards from ``reward(decisions)``)."""
    from ..search.strategies import build_strategy

    strategy = build_strategy(name, space, seed=seed, **options)
    spent = 0.0  # in ask and tell only, not in the reward
    for _ in range(asks):
        start = time.perf_counter()
        proposal = strategy.ask()
        spent += time.perf_counter() - start
        value = reward(proposal["decisions"])
        start = time.perf_counter()
        strategy.tell(proposal, value)
        spent += time.perf_counter() - start
    return asks / max(spent, 1e-9)
