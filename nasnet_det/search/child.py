"""Train and score one child network: the search's reward.

Children come from the generic builder with the CIFAR stem, trained for a fixed number of epochs
with cosine lr, momentum 0.9 and L2; reward = held-out validation accuracy.

The defaults are the shipped ground truth's task and child (``noisy-digits`` at 12 px, N = 1, F = 8,
lr 0.1) at half its epochs. They are also the network and minibatch data that the zero-cost methods
(the default reward, ``prior+gradnorm``) score. Against public full-scale CIFAR-10 accuracies no
per-child budget this CPU affords ranks cells (``docs/search.md``, "Ranking against real accuracies").
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from .. import data as datasets
from .. import genotypes
from ..errors import SearchError, require_ints
from ..modeling import build_nasnet


@dataclass(frozen=True)
class ChildConfig:
    dataset: str = "noisy-digits"  # the ranking ground truth's task (digits saturate)
    img_size: Optional[int] = 12  # pixels (digits are 8x8 originally; CIFAR is 32)
    num_cells: int = 3  # normal cells: N = num_cells / 3 (the paper searched with N = 2 on CIFAR)
    num_conv_filters: int = 8  # F, the first cells' width
    stem_multiplier: float = 3.0
    epochs: int = 2  # per-child training's budget
    batch_size: int = 64
    lr: float = 0.1  # initial learning rate (cosine decay to 0)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    threads: int = 1  # torch threads per child: workers run children in parallel
    seed: int = 0
    max_train_batches: Optional[int] = None  # cap per epoch (quick smoke searches)
    channels_last: bool = True  # train in channels_last on the CPU: 1.5x faster at the search's small sizes

    def __post_init__(self):
        require_ints(self, dict(img_size=1, num_cells=1, num_conv_filters=1, epochs=1, batch_size=1, threads=1,
                                max_train_batches=1), SearchError, "child ", optional=("img_size", "max_train_batches"))
        if not (self.lr > 0 and self.stem_multiplier > 0 and self.weight_decay >= 0 and 0 <= self.momentum < 1):
            raise SearchError(f"child lr and stem_multiplier must be positive, weight_decay >= 0 and momentum "
                              f"in [0, 1): got {self.lr}, {self.stem_multiplier}, {self.weight_decay}, {self.momentum}")


def child_options(cfg: ChildConfig, num_classes: int, img_size: int) -> dict:
    """The :class:`~nasnet_det.modeling.layout.NASNetConfig` fields of every child (and of the
    one-shot supernet, which holds them all)."""
    return dict(num_cells=cfg.num_cells, num_conv_filters=cfg.num_conv_filters, stem="cifar",
                stem_multiplier=cfg.stem_multiplier, num_classes=num_classes, skip_reduction_layer_input=False,
                dense_dropout_keep_prob=1.0, img_size=img_size)


class ChildFailed(RuntimeError):
    pass


@lru_cache(maxsize=2)
def child_data(dataset: str, img_size: Optional[int]):
    # loaded once per worker process; holdout=True gives CIFAR-10's 45k/5k split
    return datasets.build(dataset, img_size, augment=True, holdout=True)


def train_child(genotype_dict: dict, cfg: ChildConfig) -> dict:
    """Train one child; returns {"reward", "params", "seconds"}. Raises on NaN loss."""
    start = time.perf_counter()
    torch.set_num_threads(max(1, cfg.threads))
    torch.manual_seed(cfg.seed)
    genotype = genotypes.Genotype.from_dict(genotype_dict)
    data = child_data(cfg.dataset, cfg.img_size)
    model = build_nasnet(genotype, **child_options(cfg, data.num_classes, data.img_size))
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    optimizer = torch.optim.SGD(model.param_groups(cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    generator = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(data.train, batch_size=cfg.batch_size, shuffle=True, drop_last=True, generator=generator)
    steps_per_epoch = len(loader) if cfg.max_train_batches is None else min(len(loader), cfg.max_train_batches)
    total = max(1, cfg.epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    criterion = nn.CrossEntropyLoss()
    model.train()
    epoch_losses = []  # mean training loss per epoch: the learning curve (SoTL-E, White et al. 2021)
    for _ in range(cfg.epochs):
        total_loss = 0.0
        for i, (x, y) in enumerate(loader):
            if i >= steps_per_epoch:
                break
            loss = criterion(model(x.contiguous(memory_format=layout)), y)
            if not torch.isfinite(loss):
                raise ChildFailed(f"loss is {loss.item()}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            scheduler.step()
            total_loss += loss.item()
        epoch_losses.append(total_loss / steps_per_epoch)
    model.eval()
    return {"reward": held_out_accuracy(model, data.val), "params": sum(p.numel() for p in model.parameters()),
            "train_losses": epoch_losses, "seconds": time.perf_counter() - start}


@torch.no_grad()
def held_out_accuracy(forward, dataset, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``forward(images)`` on ``dataset``: the search's reward, per-child or one-shot."""
    correct = seen = 0
    for x, y in DataLoader(dataset, batch_size=batch_size):
        correct += (forward(x).argmax(1) == y).sum().item()
        seen += len(y)
    return correct / seen

