"""Search throughput: children per second with 1 and K local workers, and with Ray."""
from __future__ import annotations

import os
import statistics
import time
from typing import List, Optional



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
        done = run_search(SearchConfig(strategy="random", budget=budget, workers=k, backend=backend, out=folder,
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

