"""The timing harness every benchmark shares: models timed alternately in one run, peak memory.

Models are timed alternately (one step of each, repeated), so drift of the machine (clock boost,
other load) hits both alike; the median step time is reported. Peak memory is measured per model:
on CUDA with the allocator's peak counter, on the CPU in a fresh process per model (peak RSS rise
during its first full-size step, read from /proc after resetting the high-water mark).
"""
from __future__ import annotations

import multiprocessing as mp
import statistics
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional

import torch

from ..io import write_json

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




def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(cfg: BenchConfig, device: torch.device):
    if cfg.dtype == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[cfg.dtype])


def prepare_model(model: torch.nn.Module, cfg: BenchConfig, device: torch.device):
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
    with autocast(cfg, device):
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
    prepare, step, shrink = prepare or prepare_model, step or _step, shrink or _shrink_image
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


def time_alternately(runners: Dict[str, Callable[[], object]], iters: int, warmup: int = 1,
                     device: Optional[torch.device] = None) -> Dict[str, float]:
    """Each runner's median seconds over ``iters`` rounds after ``warmup`` rounds. The runners take
    turns within each round, so the machine's drift (clock, other load) falls on all of them alike;
    on a GPU each run is synchronised before and after. The one timing loop of the benchmarks."""
    times: Dict[str, List[float]] = {name: [] for name in runners}
    for i in range(warmup + iters):
        for name, run in runners.items():
            if device is not None:
                _sync(device)
            start = time.perf_counter()
            run()
            if device is not None:
                _sync(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def compare(builders: Dict[str, Callable[[], torch.nn.Module]], cfg: BenchConfig,
            step: Callable = _step, prepare: Callable = prepare_model, shrink: Callable = _shrink_image,
            log=print) -> dict:
    """Time ``builders`` alternately in each mode; returns {mode: {name: {...}}}."""
    device = torch.device(cfg.device)
    models = {name: prepare(build(), cfg, device) for name, build in builders.items()}
    results: Dict[str, dict] = {}
    for mode in cfg.modes:
        runners = {name: (lambda model=model, x=x: step(model, x, mode, cfg, device))
                   for name, (model, x) in models.items()}
        seconds = time_alternately(runners, cfg.iters, cfg.warmup, device)
        results[mode] = {name: {"seconds_per_step": t, "img_per_s": cfg.batch / t} for name, t in seconds.items()}
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


