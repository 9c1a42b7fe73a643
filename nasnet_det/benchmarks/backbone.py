"""NASNet-A Large as a backbone: ours against timm's ``nasnetalarge``, in the same run."""
from __future__ import annotations

from typing import Callable, Dict, Optional

import torch

from .timing import BenchConfig, compare, report, write_results



def build_timm_nasnetalarge():
    import timm
    return timm.create_model("nasnetalarge", pretrained=False)


def build_ours_nasnet_a_large():
    from ..modeling import nasnet_a_large
    # no drop path: timm's model has none, so both do the same work per step
    return nasnet_a_large(num_classes=1000, drop_path_keep_prob=1.0)


BACKBONES: Dict[str, Callable[[], torch.nn.Module]] = {
    "timm nasnetalarge": build_timm_nasnetalarge,
    "ours nasnet_a_large": build_ours_nasnet_a_large,
}



def benchmark_backbone(cfg: BenchConfig, json_path: Optional[str] = None, log=print) -> dict:
    results = compare(BACKBONES, cfg, log=log)
    report(results, cfg, "NASNet-A Large backbone, ours vs timm", log=log)
    if json_path:
        write_results(json_path, cfg, results)
    return results


