"""Where the CPU time of training goes: torch.profiler's top ops (self time) of one detector
iteration (the demo's detector, batch 4 at 128 px) and one pretraining step (NASNet-A Mobile at
224 px, batch 16, the recipe's optimizer, label smoothing and clipping)."""
from __future__ import annotations

import torch


def _table(run, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    run()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=44)


def profile_steps(rows: int = 10, log=print) -> dict:
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    from .. import model_zoo
    from .detector import prepare_detector_batch
    from .pretrain import build_ours_nasnet_a_mobile, prepare_classifier_batch, pretrain_step
    from .timing import BenchConfig

    torch.manual_seed(0)
    cfg = model_zoo.get_config("demo_fpn_cpu.yaml", ["MODEL.NASNET.ARCH", "1@192"])
    detector = build_model(cfg).train()
    _, batch = prepare_detector_batch(detector, BenchConfig(batch=4, size=128), torch.device("cpu"))

    def detector_step():
        with EventStorage(0):
            sum(detector(batch).values()).backward()

    tables = {"detector": _table(detector_step, rows)}
    bench = BenchConfig(batch=16, size=224, modes=("train",))
    model, data = prepare_classifier_batch(build_ours_nasnet_a_mobile(), bench, torch.device("cpu"))
    tables["pretrain"] = _table(lambda: pretrain_step(model, data, "train", bench, torch.device("cpu")), rows)
    for name, table in tables.items():
        log(f"== {name}: top {rows} ops by self CPU time\n{table}")
    return tables
