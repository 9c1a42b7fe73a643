"""ImageNet-style classification training of a NASNet from any genotype, with the paper's recipe.

Defaults follow the paper (appendix A.7) and TF's nasnet training setup:
- RMSProp with TF semantics (decay 0.9, epsilon 1.0, momentum 0.9): timm's ``RMSpropTF``.
- Learning rate decayed by 0.97 every 2.4 epochs (staircase).
- Label smoothing 0.1.
- Auxiliary head, loss weight 0.4.
- Dropout 0.5 before the classifier.
- ScheduledDropPath.
- L2 weight decay on conv/linear weights.
- Evaluation with an exponential moving average of the weights (0.9999, timm's ModelEmaV3 with
  warm-up, so short runs get a meaningful average too).

Runs on one CPU, or on several GPUs/nodes under ``torchrun`` (DistributedDataParallel). Mixed
precision (bf16) and channels_last on GPU. Each epoch ends with an atomic checkpoint holding
everything a resumed run needs to continue exactly as an uninterrupted one: weights, EMA,
optimizer, scheduler, step, and RNG states. The sampler order is a function of (seed, epoch).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler

from .. import data as datasets
from .. import genotypes
from ..io import torch_save, write_json
from ..modeling import build_nasnet
from ..errors import CheckpointError, ConfigError, DataError
from ..modeling.convert import save_for_detectron2

logger = logging.getLogger("nasnet_det.pretrain")


@dataclass
class PretrainConfig:
    genotype: str = "nasnet_a"
    arch: str = "4@1056"
    stem: str = "imagenet"
    stem_multiplier: float = 1.0
    skip_reduction_layer_input: bool = False
    data: str = "digits"
    img_size: Optional[int] = None  # default: 32 for digits/cifar10, 224 for imagefolder
    epochs: int = 10
    batch_size: int = 32  # per process
    lr: float = 0.04
    lr_decay: float = 0.97
    lr_decay_epochs: float = 2.4
    rmsprop_decay: float = 0.9
    rmsprop_eps: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    aux_weight: float = 0.4
    dense_dropout_keep_prob: float = 0.5
    drop_path_keep_prob: float = 1.0
    ema_decay: float = 0.9999
    clip_grad: float = 10.0  # global norm; 0 = off
    amp: bool = True  # bf16 autocast, on GPU only
    channels_last: bool = True  # on GPU only
    workers: int = 2
    seed: int = 0
    out: str = "runs/pretrain"
    progress: bool = True

    def __post_init__(self):
        from ..modeling.nasnet import STEMS

        if self.stem not in STEMS:
            raise ConfigError(f"stem must be one of {', '.join(STEMS)}, got {self.stem!r}")
        least_size = 3 if self.stem == "imagenet" else 1  # the ImageNet stem's 3x3 VALID conv
        for name, low in (("epochs", 1), ("batch_size", 1), ("workers", 0), ("img_size", least_size)):
            value = getattr(self, name)
            if name == "img_size" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer of at least {low}, got {value!r}")
        for name in ("lr", "lr_decay", "lr_decay_epochs", "rmsprop_eps", "ema_decay"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("weight_decay", "label_smoothing", "aux_weight", "clip_grad", "momentum"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} cannot be negative, got {getattr(self, name)!r}")
        if not 0 <= self.label_smoothing < 1 or not 0 < self.rmsprop_decay < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1) and rmsprop_decay in (0, 1), got "
                              f"{self.label_smoothing} and {self.rmsprop_decay}")


def _is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _init_distributed() -> torch.device:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def build_model(cfg: PretrainConfig, num_classes: int, img_size: int):
    return build_nasnet(
        genotypes.get(cfg.genotype), arch=cfg.arch, stem=cfg.stem, stem_multiplier=cfg.stem_multiplier,
        skip_reduction_layer_input=cfg.skip_reduction_layer_input, num_classes=num_classes,
        aux_head=cfg.aux_weight > 0, img_size=img_size, drop_path_keep_prob=cfg.drop_path_keep_prob,
        dense_dropout_keep_prob=cfg.dense_dropout_keep_prob)


def _param_groups(model: nn.Module, weight_decay: float):
    # TF regularises conv and FC weights only, not BN parameters or biases
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, amp: bool = False) -> Dict[str, float]:
    """Top-1 / top-5 accuracy as fractions (summed over processes under DDP)."""
    model.eval()
    counts = torch.zeros(3, device=device)  # top1, top5, n
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        top = logits.float().topk(min(5, logits.shape[1]), dim=1).indices
        counts[0] += (top[:, 0] == y).sum()
        counts[1] += (top == y[:, None]).any(dim=1).sum()
        counts[2] += len(y)
    if dist.is_initialized():
        dist.all_reduce(counts)
    return {"top1": (counts[0] / counts[2]).item(), "top5": (counts[1] / counts[2]).item()}


# What a resumed run may change: how long it trains and how it runs. Anything else (network, data,
# recipe) would make the result something no uninterrupted run produces.
RESUMABLE = ("epochs", "workers", "out", "progress")


def _check_resumable(saved: dict, cfg: PretrainConfig, path: str) -> None:
    diff = [f"{f.name}: checkpoint {saved.get(f.name)!r}, now {getattr(cfg, f.name)!r}"
            for f in dataclasses.fields(cfg) if f.name not in RESUMABLE and saved.get(f.name) != getattr(cfg, f.name)]
    if diff:
        raise CheckpointError(f"cannot resume from {path}: it was trained with other settings ({'; '.join(diff)}); "
                              "resume with the same options, or train into another --out")


def train(cfg: PretrainConfig, resume: bool = False,
          on_epoch_end: Optional[Callable[[int, dict], None]] = None) -> dict:
    """Train, evaluate each epoch, checkpoint, and export ``backbone.pth``; returns the final metrics.

    ``on_epoch_end(epoch, metrics)`` is called after each epoch's checkpoint is on disk.
    """
    device = _init_distributed()
    world, rank = (dist.get_world_size(), dist.get_rank()) if dist.is_initialized() else (1, 0)
    on_gpu = device.type == "cuda"
    amp = cfg.amp and on_gpu
    data = datasets.build(cfg.data, cfg.img_size)
    cfg = dataclasses.replace(cfg, img_size=data.img_size)
    ckpt_path = os.path.join(cfg.out, "checkpoint.pth")

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    model = build_model(cfg, data.num_classes, data.img_size).to(device)
    if on_gpu and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    from timm.loss import LabelSmoothingCrossEntropy
    from timm.optim import RMSpropTF
    from timm.utils import ModelEmaV3

    ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=True)
    optimizer = RMSpropTF(_param_groups(model, cfg.weight_decay), lr=cfg.lr, alpha=cfg.rmsprop_decay,
                          eps=cfg.rmsprop_eps, momentum=cfg.momentum)
    sampler = DistributedSampler(data.train, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=True)
    train_loader = DataLoader(data.train, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                              pin_memory=on_gpu, drop_last=True, persistent_workers=False)
    val_sampler = DistributedSampler(data.val, num_replicas=world, rank=rank, shuffle=False)
    val_loader = DataLoader(data.val, batch_size=cfg.batch_size * 2, sampler=val_sampler, num_workers=cfg.workers)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise DataError(f"batch size {cfg.batch_size} x {world} processes exceeds the {len(data.train)} training "
                        f"images of {cfg.data}: lower --batch-size")
    total_steps = cfg.epochs * steps_per_epoch
    decay_every = max(1, round(cfg.lr_decay_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cfg.lr_decay ** (step // decay_every))
    criterion = LabelSmoothingCrossEntropy(cfg.label_smoothing) if cfg.label_smoothing > 0 else nn.CrossEntropyLoss()

    start_epoch, history = 0, []
    if resume and os.path.isfile(ckpt_path):
        try:
            state = torch.load(ckpt_path, map_location=device, weights_only=False)
        except Exception as e:  # a truncated or foreign file: say which, keep it for inspection
            raise CheckpointError(f"cannot read checkpoint {ckpt_path}: {type(e).__name__}: {e}") from None
        _check_resumable(state["config"], cfg, ckpt_path)
        model.load_state_dict(state["model"])
        ema.module.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history = state["epoch"] + 1, state["history"]
        _set_rng_state(state["rng"])
        logger.info("resumed from %s after epoch %d", ckpt_path, state["epoch"])
    elif resume:
        logger.warning("--resume: no checkpoint at %s yet, so training starts from the beginning", ckpt_path)

    train_model = model
    if dist.is_initialized():
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if on_gpu else None)
    if _is_main():
        os.makedirs(cfg.out, exist_ok=True)
        write_json(os.path.join(cfg.out, "config.json"), dataclasses.asdict(cfg))

    metrics = history[-1] if history else {}
    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        train_model.train()
        bar = None
        if cfg.progress and _is_main():
            from tqdm import tqdm

            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, dynamic_ncols=True)
        seen, start, loss_sum = 0, time.perf_counter(), 0.0
        for i, (x, y) in enumerate(train_loader):
            step = epoch * steps_per_epoch + i
            model.set_drop_path_progress(step / total_steps)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if on_gpu and cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                out = train_model(x)
                logits, aux = out if isinstance(out, tuple) else (out, None)
                loss = criterion(logits.float(), y)
                if aux is not None:
                    loss = loss + cfg.aux_weight * criterion(aux.float(), y)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch + 1}, step {i}: lower --lr?")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            optimizer.step()
            scheduler.step()
            ema.update(model, step=step)
            seen += len(y) * world
            loss_sum += loss.item()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}",
                                img_s=f"{seen / (time.perf_counter() - start):.0f}")
        if bar is not None:
            bar.close()
        raw, averaged = evaluate(model, val_loader, device, amp), evaluate(ema.module, val_loader, device, amp)
        metrics = {"epoch": epoch + 1, "top1": raw["top1"], "top5": raw["top5"], "ema_top1": averaged["top1"],
                   "ema_top5": averaged["top5"], "train_loss": loss_sum / steps_per_epoch,
                   "img_per_s": seen / (time.perf_counter() - start)}
        history.append(metrics)
        if _is_main():
            logger.info("epoch %d/%d: loss %.4f, top-1 %.4f (EMA %.4f), top-5 %.4f (EMA %.4f)", epoch + 1, cfg.epochs,
                        metrics["train_loss"], metrics["top1"], metrics["ema_top1"], metrics["top5"], metrics["ema_top5"])
            torch_save({"model": model.state_dict(), "ema": ema.module.state_dict(),
                          "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                          "epoch": epoch, "history": history, "rng": _rng_state(),
                        "config": dataclasses.asdict(cfg)}, ckpt_path)
            write_json(os.path.join(cfg.out, "metrics.json"), {**metrics, "history": history})
        if on_epoch_end is not None:
            on_epoch_end(epoch, metrics)

    if _is_main():
        save_for_detectron2(ema.module, os.path.join(cfg.out, "backbone.pth"),
                            extra={"metrics": metrics})
    return metrics
