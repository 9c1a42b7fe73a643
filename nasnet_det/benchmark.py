"""Speed and memory of our networks against the reference implementations, in the same run.

Models are timed alternately (one step of each, repeated), so drift of the machine (clock boost,
other load) hits both alike; the median step time is reported. Peak memory is measured per model:
on CUDA with the allocator's peak counter, on the CPU in a fresh process per model (peak RSS rise
during its first full-size step, read from /proc after resetting the high-water mark).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional

import torch

from .io import write_json

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class BenchConfig:
    batch: int = 2
    size: int = 331  # image height (and width unless given)
    width: Optional[int] = None
    device: str = "cpu"
    dtype: str = "fp32"  # autocast dtype; fp32 = no autocast
    channels_last: bool = False
    modes: tuple = ("forward", "train")
    iters: int = 5
    warmup: int = 2
    memory: bool = True
    compile: bool = False


# ------------------------------------------------------------------------------------------------
# Backbones under test (module-level so a spawned process can build them)

def build_timm_nasnetalarge():
    import timm
    return timm.create_model("nasnetalarge", pretrained=False)


def build_ours_nasnet_a_large():
    from .modeling import nasnet_a_large
    # no drop path: timm's model has none, so both do the same work per step
    return nasnet_a_large(num_classes=1000, drop_path_keep_prob=1.0)


BACKBONES: Dict[str, Callable[[], torch.nn.Module]] = {
    "timm nasnetalarge": build_timm_nasnetalarge,
    "ours nasnet_a_large": build_ours_nasnet_a_large,
}


# ------------------------------------------------------------------------------------------------

def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(cfg: BenchConfig, device: torch.device):
    if cfg.dtype == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[cfg.dtype])


def _prepare(model: torch.nn.Module, cfg: BenchConfig, device: torch.device):
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.compile:
        model = torch.compile(model)
    x = torch.randn(cfg.batch, 3, cfg.size, cfg.size, device=device)
    if cfg.channels_last:
        x = x.to(memory_format=torch.channels_last)
    return model, x


def _step(model, x, mode: str, cfg: BenchConfig, device: torch.device):
    with _autocast(cfg, device):
        if mode == "forward":
            model.eval()
            with torch.no_grad():
                model(x)
        else:
            model.train()
            out = model(x)
            out = out[0] if isinstance(out, tuple) else out
            out.float().mean().backward()
    if mode != "forward":
        for p in model.parameters():
            p.grad = None


def _peak_rss_child(builder, cfg_dict, mode, queue, prepare, step, shrink):
    cfg = BenchConfig(**cfg_dict)
    device = torch.device(cfg.device)
    model, x = prepare(builder(), cfg, device)
    # start thread pools and kernels on a tiny input; at full size, freed blocks would stay in
    # malloc's heap and hide the next step's peak from the RSS counters
    step(model, shrink(x), mode, cfg, device)

    def status(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field))

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    base = status("VmRSS:")
    step(model, x, mode, cfg, device)
    queue.put((status("VmHWM:") - base) * 1024)


def _shrink_image(x):
    return x[:1, :, :64, :64]


def peak_memory(builder, cfg: BenchConfig, mode: str, prepare=None, step=None, shrink=None) -> Optional[int]:
    """Peak memory of one step, in bytes, above what the model and input already hold."""
    prepare, step, shrink = prepare or _prepare, step or _step, shrink or _shrink_image
    device = torch.device(cfg.device)
    if device.type == "cuda":
        model, x = prepare(builder(), cfg, device)
        step(model, x, mode, cfg, device)
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step(model, x, mode, cfg, device)
        _sync(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del model, x
        torch.cuda.empty_cache()
        return peak
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_rss_child, args=(builder, asdict(cfg), mode, queue, prepare, step, shrink))
    proc.start()
    proc.join()
    return queue.get() if proc.exitcode == 0 and not queue.empty() else None


def compare(builders: Dict[str, Callable[[], torch.nn.Module]], cfg: BenchConfig,
            step: Callable = _step, prepare: Callable = _prepare, shrink: Callable = _shrink_image,
            log=print) -> dict:
    """Time ``builders`` alternately in each mode; returns {mode: {name: {...}}}."""
    device = torch.device(cfg.device)
    models = {name: prepare(build(), cfg, device) for name, build in builders.items()}
    results: Dict[str, dict] = {}
    for mode in cfg.modes:
        times: Dict[str, List[float]] = {name: [] for name in models}
        for i in range(cfg.warmup + cfg.iters):
            for name, (model, x) in models.items():
                _sync(device)
                start = time.perf_counter()
                step(model, x, mode, cfg, device)
                _sync(device)
                if i >= cfg.warmup:
                    times[name].append(time.perf_counter() - start)
        results[mode] = {}
        for name in models:
            median = statistics.median(times[name])
            results[mode][name] = {"seconds_per_step": median, "img_per_s": cfg.batch / median}
    if cfg.memory:
        del models
        for mode in cfg.modes:
            for name, build in builders.items():
                results[mode][name]["peak_bytes"] = peak_memory(build, cfg, mode, prepare, step, shrink)
    return results


def report(results: dict, cfg: BenchConfig, title: str, log=print) -> None:
    names = list(next(iter(results.values())))
    reference, ours = names[0], names[-1]
    log(f"{title}: batch {cfg.batch}, {cfg.size}x{cfg.size}, {cfg.device}, {cfg.dtype}, "
        f"{'channels_last' if cfg.channels_last else 'NCHW'}{', compiled' if cfg.compile else ''}, "
        f"median of {cfg.iters} alternating steps after {cfg.warmup} warm-up")
    log(f"{'mode':<8} " + " ".join(f"{n + ' img/s':>24}" for n in names) + f" {'ratio ours/ref':>15}")
    for mode, row in results.items():
        ratio = row[ours]["img_per_s"] / row[reference]["img_per_s"]
        log(f"{mode:<8} " + " ".join(f"{row[n]['img_per_s']:>24.2f}" for n in names) + f" {ratio:>15.3f}")
    for mode, row in results.items():
        peaks = [row[n].get("peak_bytes") for n in names]
        if all(p is not None for p in peaks):
            ratio = peaks[-1] / peaks[0] if peaks[0] else float("nan")
            log(f"peak memory, {mode}: " + ", ".join(f"{n} {p / 2**20:.0f} MiB" for n, p in zip(names, peaks))
                + f" (ratio ours/ref {ratio:.3f})")


def write_results(json_path: str, cfg: BenchConfig, results: dict) -> str:
    """The run's settings and timings as JSON (``--json``), written atomically."""
    return write_json(json_path, {"config": asdict(cfg), "results": results})


def benchmark_backbone(cfg: BenchConfig, json_path: Optional[str] = None, log=print) -> dict:
    results = compare(BACKBONES, cfg, log=log)
    report(results, cfg, "NASNet-A Large backbone, ours vs timm", log=log)
    if json_path:
        write_results(json_path, cfg, results)
    return results


# ------------------------------------------------------------------------------------------------
# The pretraining loop's step: NASNet-A Mobile, ours vs pretrainedmodels' (Cadene's) port

def build_cadene_nasnetamobile():
    import pretrainedmodels
    return pretrainedmodels.nasnetamobile(num_classes=1000, pretrained=None)


def build_ours_nasnet_a_mobile():
    from .modeling import nasnet_a_mobile
    return nasnet_a_mobile(num_classes=1000)  # no aux head: Cadene's model has none


def _prepare_classifier(model, cfg: BenchConfig, device):
    from timm.optim import RMSpropTF

    model, x = _prepare(model, cfg, device)
    model.bench_optimizer = RMSpropTF(model.parameters(), lr=0.01, alpha=0.9, eps=1.0, momentum=0.9)
    labels = torch.randint(0, 1000, (cfg.batch,), generator=torch.Generator().manual_seed(0)).to(device)
    return model, (x, labels)


def _shrink_classifier(batch):
    x, y = batch
    return x[:1], y[:1]  # one image at full size: Cadene's model pools with a fixed 7x7 window


def _pretrain_step(model, batch, mode, cfg: BenchConfig, device):
    """One step of nasnet_det.pretrain's loop: label-smoothed CE, backward, clip, RMSpropTF."""
    from timm.loss import LabelSmoothingCrossEntropy

    x, y = batch
    model.train()
    with _autocast(cfg, device):
        loss = LabelSmoothingCrossEntropy(0.1)(model(x).float(), y)
    model.bench_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
    model.bench_optimizer.step()


PRETRAIN_MODELS: Dict[str, Callable[[], torch.nn.Module]] = {
    "pretrainedmodels nasnetamobile": build_cadene_nasnetamobile,
    "ours nasnet_a_mobile": build_ours_nasnet_a_mobile,
}


def benchmark_pretrain(cfg: BenchConfig, json_path: Optional[str] = None, log=print) -> dict:
    cfg.modes = ("train",)
    results = compare(PRETRAIN_MODELS, cfg, step=_pretrain_step, prepare=_prepare_classifier,
                      shrink=_shrink_classifier, log=log)
    report(results, cfg, "pretraining loop, NASNet-A Mobile, ours vs pretrainedmodels", log=log)
    if json_path:
        write_results(json_path, cfg, results)
    return results


# ------------------------------------------------------------------------------------------------
# Search throughput: children per second with 1 and K local workers, and with Ray

def _children_per_second(trials: List[dict], workers: int) -> float:
    """Steady-state rate: completions after the first wave (which also pays the workers' start-up)."""
    times = sorted(t["finished"] for t in trials if t["final"])
    if len(times) <= workers:
        return float("nan")
    return (len(times) - workers) / (times[-1] - times[workers - 1])


def benchmark_search(budget: int = 10, workers: int = 2, child_options: Optional[dict] = None,
                     out: str = "runs/benchmark_search", log=print) -> dict:
    import shutil

    from .search.child import ChildConfig
    from .search.runner import SearchConfig, run_search

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
