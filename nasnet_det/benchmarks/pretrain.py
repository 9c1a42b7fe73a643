"""The pretraining loop's step: our NASNet-A Mobile against pretrainedmodels' (Cadene's) port."""
from __future__ import annotations

from typing import Callable, Dict, Optional

import torch

from .timing import BenchConfig, autocast, compare, prepare_model, report, write_results



def build_cadene_nasnetamobile():
    import pretrainedmodels
    return pretrainedmodels.nasnetamobile(num_classes=1000, pretrained=None)


def build_ours_nasnet_a_mobile():
    from ..modeling import nasnet_a_mobile
    return nasnet_a_mobile(num_classes=1000)  # no aux head: Cadene's model has none


def prepare_classifier_batch(model, cfg: BenchConfig, device):
    from timm.optim import RMSpropTF

    model, x = prepare_model(model, cfg, device)
    model.bench_optimizer = RMSpropTF(model.parameters(), lr=0.01, alpha=0.9, eps=1.0, momentum=0.9)
    labels = torch.randint(0, 1000, (cfg.batch,), generator=torch.Generator().manual_seed(0)).to(device)
    return model, (x, labels)


def _shrink_classifier(batch):
    x, y = batch
    return x[:1], y[:1]  # one image at full size: Cadene's model pools with a fixed 7x7 window


def pretrain_step(model, batch, mode, cfg: BenchConfig, device):
    """One step of nasnet_det.pretrain's loop: label-smoothed CE, backward, clip, RMSpropTF."""
    from timm.loss import LabelSmoothingCrossEntropy

    x, y = batch
    model.train()
    with autocast(cfg, device):
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
    results = compare(PRETRAIN_MODELS, cfg, step=pretrain_step, prepare=prepare_classifier_batch,
                      shrink=_shrink_classifier, log=log)
    report(results, cfg, "pretraining loop, NASNet-A Mobile, ours vs pretrainedmodels", log=log)
    if json_path:
        write_results(json_path, cfg, results)
    return results


