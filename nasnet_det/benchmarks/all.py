"""Every comparison in one prepared command (``tools/benchmark.py all --out DIR``, ``make bench-gpu``):
GPU time comes in short windows, so the whole report is one run that fits in minutes.

Writes ``DIR/results-<device>.json`` (every figure, with each section's settings) and
``DIR/results-<device>.md`` (one table). ``--quick`` shrinks every section to seconds, for the
CPU and for the test that keeps the command from rotting; its figures are not measurements.
"""
from __future__ import annotations

import os
import re
import time
from typing import Dict, List

import torch

from ..io import write_json, write_text
from .backbone import BACKBONES
from .pretrain import benchmark_pretrain
from .search import benchmark_search
from .timing import BenchConfig, compare


def device_name(device: str) -> str:
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")


def _sections(device: str, quick: bool) -> List[tuple]:
    """(title, runner) for each comparison, at the issue's sizes or (quick) tiny ones."""
    def cfg(**kw) -> BenchConfig:
        base = dict(device=device, iters=1 if quick else 5, warmup=0 if quick else 2, memory=not quick)
        return BenchConfig(**{**base, **kw})

    large = dict(size=96 if quick else 331)
    sections = [
        ("backbone train, fp32 NCHW", lambda log: compare(BACKBONES, cfg(batch=2 if quick else 32, modes=("train",), **large), log=log)),
        ("backbone train, channels_last bf16", lambda log: compare(
            BACKBONES, cfg(batch=2 if quick else 32, modes=("train",), channels_last=True, dtype="bf16", **large), log=log)),
        ("backbone inference, eager", lambda log: compare(BACKBONES, cfg(batch=2 if quick else 64, modes=("forward",), **large), log=log)),
    ]
    if not quick:  # compiling two NASNet-A Large takes minutes on a CPU; the quick run leaves it out
        sections.append(("backbone inference, torch.compile channels_last bf16", lambda log: compare(
            BACKBONES, cfg(batch=64, modes=("forward",), channels_last=True, dtype="bf16", compile=True, **large), log=log)))
    from .detector import benchmark_detector

    detector = cfg(batch=2, size=128 if quick else 800, width=160 if quick else 1216, modes=("train", "forward"))
    sections.append(("detector", lambda log: benchmark_detector(detector, log=log)))
    sections.append(("pretraining step, NASNet-A Mobile 224", lambda log: benchmark_pretrain(
        cfg(batch=2 if quick else 64, size=224, modes=("train",)), log=log)))
    return sections


def _rows(title: str, results: dict) -> List[str]:
    rows = []
    for mode, models in results.items():
        if not isinstance(models, dict) or not all(isinstance(v, dict) for v in models.values()):
            continue
        names = list(models)
        reference = models[names[0]]
        for name, r in models.items():
            if "seconds_per_step" not in r:
                continue
            speed = reference["seconds_per_step"] / r["seconds_per_step"]
            peak = f"{r['peak_bytes'] / 2**20:.0f}" if r.get("peak_bytes") else "-"
            rows.append(f"| {title} | {mode} | {name} | {r['seconds_per_step']:.4f} | {r.get('img_per_s', 0):.2f} | "
                        f"{peak} | {speed:.2f}x |")
    return rows


def benchmark_all(out: str, device: str = "cpu", quick: bool = False, search_workers: int = 2, log=print) -> Dict[str, str]:
    """Run every section; returns the paths of the JSON and markdown results."""
    name = device_name(device)
    results: Dict[str, object] = {"device": name, "torch": torch.__version__, "quick": quick, "sections": {}}
    rows = ["| section | mode | model | s/step | img/s | peak MiB | speed vs first row |", "|---|---|---|---|---|---|---|"]
    started = time.perf_counter()
    for title, run in _sections(device, quick):
        log(f"== {title}")
        begun = time.perf_counter()
        section = run(log)
        results["sections"][title] = {"results": section, "seconds": time.perf_counter() - begun}
        rows += _rows(title, section)
    log("== search throughput")
    search = benchmark_search(budget=4 if quick else 10, workers=search_workers, out=os.path.join(out, "search"),
                              child_options=dict(epochs=1, max_train_batches=2 if quick else 10, num_conv_filters=4 if quick else 8,
                                                 img_size=8 if quick else 16), log=log)
    results["sections"]["search"] = {"results": search}
    for setup, r in search.items():
        rows.append(f"| search | children/s | {setup} | - | {r['children_per_s']:.3f} children/s | - | - |")
    results["seconds"] = time.perf_counter() - started
    json_path = write_json(os.path.join(out, f"results-{name}.json"), results)
    md_path = write_text(os.path.join(out, f"results-{name}.md"), "\n".join(
        [f"# nasnet_det benchmarks on {name}{' (quick: not measurements)' if quick else ''}", "",
         f"torch {torch.__version__}; {results['seconds']:.0f} s in all. Within a section the models ran "
         "alternately; 'speed' is the first row's time over this row's.", ""] + rows) + "\n")
    log(f"wrote {json_path} and {md_path} in {results['seconds']:.0f} s")
    return {"json": json_path, "markdown": md_path}


__all__: List[str] = ["benchmark_all", "device_name"]
