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
import re
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
from ..io import FolderLock, load_refusal, resume_differences, tensorboard_writer, torch_save, write_json
from ..modeling import build_nasnet
from ..errors import CheckpointError, ConfigError, DataError, require_ints
from ..modeling.convert import save_for_detectron2
from ..procs import die_with_launcher

logger = logging.getLogger("nasnet_det.pretrain")


MAX_N = 100  # cells per stage / 3: the paper's largest network is N = 6


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
        from ..modeling.layout import STEMS

        if self.stem not in STEMS:
            raise ConfigError(f"stem must be one of {', '.join(STEMS)}, got {self.stem!r}")
        least_size = 3 if self.stem == "imagenet" else 1  # the ImageNet stem's 3x3 VALID conv
        require_ints(self, dict(epochs=1, batch_size=1, workers=0, img_size=least_size), ConfigError,
                     optional=("img_size",))
        for name in ("lr", "lr_decay", "lr_decay_epochs", "rmsprop_eps", "ema_decay"):
            if not getattr(self, name) > 0 or not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        for name in ("weight_decay", "label_smoothing", "aux_weight", "clip_grad", "momentum"):
            if not getattr(self, name) >= 0 or not math.isfinite(getattr(self, name)):  # NaN fails >= too
                raise ConfigError(f"{name} must be a number of at least 0, got {getattr(self, name)!r}")
        # an average that forgets nothing (>= 1) or a momentum that amplifies (>= 1) diverge in silence
        for name in ("ema_decay", "momentum", "lr_decay"):
            if not getattr(self, name) < 1 and not (name == "lr_decay" and getattr(self, name) == 1):
                raise ConfigError(f"{name} must be below 1 (the paper: ema_decay 0.9999, momentum 0.9), "
                                  f"got {getattr(self, name)!r}")
        n = re.fullmatch(r"\s*(\d+)\s*@\s*\d+\s*", str(self.arch))
        if n and int(n.group(1)) > MAX_N:  # 3N + 2 cells: hours of building before the first step
            raise ConfigError(f"arch {self.arch}: N = {int(n.group(1))} stacks {3 * int(n.group(1)) + 2} cells, which "
                              f"would take hours to build on this machine (the paper's largest network is N = 6); "
                              f"give N <= {MAX_N}")
        if not 0 <= self.label_smoothing < 1 or not 0 < self.rmsprop_decay < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1) and rmsprop_decay in (0, 1), got "
                              f"{self.label_smoothing} and {self.rmsprop_decay}")


def _is_main() -> bool:
    if dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0  # torchrun's rank, before the process group is up


def _init_distributed() -> torch.device:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        die_with_launcher()  # a kill -9 of torchrun ends this rank too
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def _rng_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    # tensors and plain data only: the checkpoint loads with weights_only=True (no pickled code)
    numpy_state = [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    keys = keys.numpy().astype(np.uint32) if isinstance(keys, torch.Tensor) else keys
    np.random.set_state((name, keys, pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_memory(cfg: PretrainConfig, num_classes: int, img_size: int) -> int:
    """Refuse an architecture whose training state cannot fit this machine's memory, before it is
    built; returns the estimated parameter count (N = 1 and 2 built on the meta device, extrapolated)."""
    from ..modeling.layout import parse_arch

    num_cells, _ = parse_arch(cfg.arch, genotypes.get(cfg.genotype))
    n, width = num_cells // 3, cfg.arch.split("@")[1].strip()
    counts = []
    with torch.device("meta"):
        for k in (1, 2):
            net = build_model(dataclasses.replace(cfg, arch=f"{k}@{width}"), num_classes, img_size)
            counts.append(sum(p.numel() for p in net.parameters()))
    params = counts[0] + (n - 1) * (counts[1] - counts[0])
    needed = params * 4 * 5  # fp32 weights, gradients, RMSProp's two buffers and the EMA copy
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > 0.8 * total:
        raise ConfigError(f"arch {cfg.arch}: about {params / 1e6:,.0f}M parameters, {needed / 2 ** 30:,.1f} GiB for "
                          f"weights, gradients, optimizer and EMA before any activation; this machine has "
                          f"{total / 2 ** 30:,.1f} GiB: give a smaller N@F")
    return params


def build_model(cfg: PretrainConfig, num_classes: int, img_size: int):
    return build_nasnet(
        genotypes.get(cfg.genotype), arch=cfg.arch, stem=cfg.stem, stem_multiplier=cfg.stem_multiplier,
        skip_reduction_layer_input=cfg.skip_reduction_layer_input, num_classes=num_classes,
        aux_head=cfg.aux_weight > 0, img_size=img_size, drop_path_keep_prob=cfg.drop_path_keep_prob,
        dense_dropout_keep_prob=cfg.dense_dropout_keep_prob)


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
    now = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    diff = resume_differences({k: saved.get(k) for k in now}, now, RESUMABLE)
    if diff:
        raise CheckpointError(f"cannot resume from {path}: it was trained with other settings (checkpoint -> now: "
                              f"{'; '.join(diff)}); resume with the same options, or train into another --out")


class PretrainRun:
    """One pretraining run: the network, the recipe's optimizer, schedule and EMA, the data loaders,
    and the checkpoint that lets it resume exactly."""

    def __init__(self, cfg: PretrainConfig):
        self.device = _init_distributed()
        self.world, self.rank = (dist.get_world_size(), dist.get_rank()) if dist.is_initialized() else (1, 0)
        self.on_gpu = self.device.type == "cuda"
        self.amp = cfg.amp and self.on_gpu
        data = datasets.build(cfg.data, cfg.img_size)
        self.cfg = cfg = dataclasses.replace(cfg, img_size=data.img_size)
        self.checkpoint_path = os.path.join(cfg.out, "checkpoint.pth")
        check_memory(cfg, data.num_classes, data.img_size)  # before the seed: the real build's draws stay the same

        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
        self.model = build_model(cfg, data.num_classes, data.img_size).to(self.device)
        if self.on_gpu and cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        from timm.loss import LabelSmoothingCrossEntropy
        from timm.optim import RMSpropTF
        from timm.utils import ModelEmaV3

        self.ema = ModelEmaV3(self.model, decay=cfg.ema_decay, use_warmup=True)
        self.optimizer = RMSpropTF(self.model.param_groups(cfg.weight_decay), lr=cfg.lr, alpha=cfg.rmsprop_decay,
                                   eps=cfg.rmsprop_eps, momentum=cfg.momentum)
        self.sampler = DistributedSampler(data.train, num_replicas=self.world, rank=self.rank, shuffle=True,
                                          seed=cfg.seed, drop_last=True)
        self.train_loader = DataLoader(data.train, batch_size=cfg.batch_size, sampler=self.sampler,
                                       num_workers=cfg.workers, pin_memory=self.on_gpu, drop_last=True)
        self.val_loader = DataLoader(data.val, batch_size=cfg.batch_size * 2, num_workers=cfg.workers,
                                     sampler=DistributedSampler(data.val, num_replicas=self.world, rank=self.rank,
                                                                shuffle=False))
        self.steps_per_epoch = len(self.train_loader)
        if self.steps_per_epoch == 0:
            raise DataError(f"batch size {cfg.batch_size} x {self.world} processes exceeds the {len(data.train)} "
                            f"training images of {cfg.data}: lower --batch-size")
        self.total_steps = cfg.epochs * self.steps_per_epoch
        decay_every = max(1, round(cfg.lr_decay_epochs * self.steps_per_epoch))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           lambda step: cfg.lr_decay ** (step // decay_every))
        self.criterion = (LabelSmoothingCrossEntropy(cfg.label_smoothing) if cfg.label_smoothing > 0
                          else nn.CrossEntropyLoss())
        self.train_model = self.model
        if dist.is_initialized():
            self.train_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.on_gpu else None)
        self.history: list = []

    def resume(self) -> int:
        """Load the checkpoint, if any; returns the first epoch still to train."""
        if not os.path.isfile(self.checkpoint_path):
            logger.warning("--resume: no checkpoint at %s yet, so training starts from the beginning",
                           self.checkpoint_path)
            return 0
        try:
            # weights_only: a checkpoint handed to us loads tensors and plain data, never runs code
            state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        except Exception as e:  # a truncated, foreign or crafted file: say which, keep it for inspection
            raise CheckpointError(f"cannot read checkpoint {self.checkpoint_path} (tensors and plain data only): "
                                  f"{load_refusal(e)}") from None
        _check_resumable(state["config"], self.cfg, self.checkpoint_path)
        self.model.load_state_dict(state["model"])
        self.ema.module.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history = state["history"]
        _set_rng_state(state["rng"])
        logger.info("resumed from %s after epoch %d", self.checkpoint_path, state["epoch"])
        return state["epoch"] + 1

    def train_epoch(self, epoch: int) -> dict:
        """One epoch of the recipe, then top-1/top-5 of the weights and of their EMA."""
        cfg = self.cfg
        self.sampler.set_epoch(epoch)
        self.train_model.train()
        bar = None
        if cfg.progress and _is_main():
            from tqdm import tqdm

            bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       dynamic_ncols=True)
        seen, start, loss_sum = 0, time.perf_counter(), 0.0
        for i, (x, y) in enumerate(self.train_loader):
            step = epoch * self.steps_per_epoch + i
            loss = self._step(x, y, step)
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss is {loss} at epoch {epoch + 1}, step {i}: lower --lr?")
            seen += len(y) * self.world
            loss_sum += loss
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}",
                                img_s=f"{seen / (time.perf_counter() - start):.0f}")
        if bar is not None:
            bar.close()
        raw = evaluate(self.model, self.val_loader, self.device, self.amp)
        averaged = evaluate(self.ema.module, self.val_loader, self.device, self.amp)
        return {"epoch": epoch + 1, "top1": raw["top1"], "top5": raw["top5"], "ema_top1": averaged["top1"],
                "ema_top5": averaged["top5"], "train_loss": loss_sum / self.steps_per_epoch,
                "img_per_s": seen / (time.perf_counter() - start)}

    def _step(self, x: torch.Tensor, y: torch.Tensor, step: int) -> float:
        cfg = self.cfg
        self.model.set_drop_path_progress(step / self.total_steps)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if self.on_gpu and cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.train_model(x)
            logits, aux = out if isinstance(out, tuple) else (out, None)
            loss = self.criterion(logits.float(), y)
            if aux is not None:
                loss = loss + cfg.aux_weight * self.criterion(aux.float(), y)
        if not torch.isfinite(loss):
            return loss.item()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_grad > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update(self.model, step=step)
        return loss.item()

    def save(self, epoch: int, metrics: dict) -> None:
        """The epoch's checkpoint and metrics.json, atomically (main process only)."""
        cfg = self.cfg
        logger.info("epoch %d/%d: loss %.4f, top-1 %.4f (EMA %.4f), top-5 %.4f (EMA %.4f)", epoch + 1, cfg.epochs,
                    metrics["train_loss"], metrics["top1"], metrics["ema_top1"], metrics["top5"], metrics["ema_top5"])
        torch_save({"model": self.model.state_dict(), "ema": self.ema.module.state_dict(),
                    "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "epoch": epoch, "history": self.history, "rng": _rng_state(),
                    "config": dataclasses.asdict(cfg)}, self.checkpoint_path)
        write_json(os.path.join(cfg.out, "metrics.json"), {**metrics, "history": self.history})


def train(cfg: PretrainConfig, resume: bool = False,
          on_epoch_end: Optional[Callable[[int, dict], None]] = None) -> dict:
    """Train, evaluate each epoch, checkpoint, and export ``backbone.pth``; returns the final metrics.

    ``on_epoch_end(epoch, metrics)`` is called after each epoch's checkpoint is on disk.
    """
    if resume and not os.path.isfile(os.path.join(cfg.out, "checkpoint.pth")):
        raise CheckpointError(f"nothing to resume: {cfg.out} holds no pretraining run (no checkpoint.pth); run without "
                              "--resume to start one")
    if not resume and os.path.isfile(os.path.join(cfg.out, "checkpoint.pth")):
        raise CheckpointError(f"{cfg.out} already holds a pretraining run (checkpoint.pth): use --resume to continue "
                              "it, or another --out (nothing was overwritten)")
    lock = FolderLock(cfg.out, "pretraining").acquire(CheckpointError) if _is_main() else None
    try:
        return _train(cfg, resume, on_epoch_end)
    finally:
        if lock is not None:
            lock.release()


def _train(cfg: PretrainConfig, resume: bool, on_epoch_end) -> dict:
    run = PretrainRun(cfg)
    start_epoch = run.resume() if resume else 0
    if _is_main():
        os.makedirs(run.cfg.out, exist_ok=True)
        write_json(os.path.join(run.cfg.out, "config.json"), dataclasses.asdict(run.cfg))
    metrics = run.history[-1] if run.history else {}
    board = tensorboard_writer(run.cfg.out) if _is_main() else None  # beside the run's files
    for epoch in range(start_epoch, run.cfg.epochs):
        metrics = run.train_epoch(epoch)
        run.history.append(metrics)
        if _is_main():
            run.save(epoch, metrics)
            if board is not None:
                for key in ("train_loss", "top1", "top5", "ema_top1", "ema_top5", "img_per_s"):
                    board.add_scalar(f"pretrain/{key}", metrics[key], epoch + 1)
                board.add_scalar("pretrain/lr", run.scheduler.get_last_lr()[0], epoch + 1)
                board.flush()
        if on_epoch_end is not None:
            on_epoch_end(epoch, metrics)
    if board is not None:
        board.close()
    if _is_main():
        save_for_detectron2(run.ema.module, os.path.join(run.cfg.out, "backbone.pth"), extra={"metrics": metrics})
    return metrics
