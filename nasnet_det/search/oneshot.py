"""One-shot search: train one supernet (:mod:`.supernet`), score children with its weights.

``--method oneshot`` keeps the search loop of :mod:`.runner` (the strategy asks, a backend scores,
the trial log keeps every attempt) and changes two things:

- Before any child is scored, the supernet trains for ``oneshot.epochs`` epochs, one uniformly
  sampled child per minibatch (SPOS, DetNAS). With ``oneshot.round_steps`` > 0 it trains that many
  more steps after every ``oneshot.round_children`` scored children, on children the strategy
  samples: with ``ppo`` that is ENAS (the controller and the shared weights take turns).
- A child's reward is its held-out accuracy with the supernet's weights (:func:`score_child`),
  after its BN statistics are re-estimated on a few training batches.

The supernet has the children's size and data (``--child-*``, ``--dataset``); ``child.epochs`` is
not used. ``OUT/supernet.pt`` holds the weights, the optimizer and the position in the schedule,
written atomically every epoch and after every round: ``--resume`` continues from it. Workers score
children from that file, so on a Ray cluster of several machines ``--out`` must be on a shared
filesystem.
"""
from __future__ import annotations

import itertools
import math
import os
import random
import time
from typing import Callable, Dict, Iterable, List, Optional

import torch
import torch.distributed as dist
import torch.nn as nn

from .. import genotypes
from ..errors import SearchError
from ..io import load_refusal, torch_save
from ..modeling.nasnet import decay_param_groups
from .child import ChildConfig
from .config import SAMPLING, OneShotConfig, search_config  # noqa: F401  (SAMPLING, OneShotConfig: the API)
from .space import SearchSpace, step_seed
from .supernet import SuperNet

def uniform_sampler(space: SearchSpace, seed: int) -> Callable[[int], List[int]]:
    """Step -> decisions, uniform and reproducible (a resumed run samples the same paths)."""
    return lambda step: space.random_at(seed, step)


def fair_paths(space: SearchSpace, seed: int, step: int) -> List[List[int]]:
    """FairNAS's strict fairness: as many paths as ops, every op decision taking each op exactly once
    (a random permutation per decision); input decisions uniform. Reproducible per (seed, step)."""
    rng = random.Random(step_seed(seed, step))
    m = len(space.ops)
    columns = []
    for d in space.decisions:
        if d.kind == "op":
            perm = list(range(m))
            rng.shuffle(perm)
            columns.append(perm)
        else:
            columns.append([rng.randrange(len(d.choices)) for _ in range(m)])
    return [[col[i] for col in columns] for i in range(m)]


class SupernetTrainer:
    """The supernet of a search, its optimizer and its place in the schedule (``supernet.pt``).

    Subclasses change the task (:class:`ClassificationSupernet`, and the detection one in
    :mod:`nasnet_det.detection.oneshot`): ``build``, ``batches`` and ``loss``.
    """

    filename = "supernet.pt"

    def __init__(self, cfg, space: SearchSpace, progress: bool = True):
        self.cfg, self.space, self.progress = cfg, space, progress
        self.child: ChildConfig = cfg.child
        self.oneshot: OneShotConfig = cfg.oneshot
        self.path = os.path.join(cfg.out, self.filename)
        torch.set_num_threads(max(1, self.child.threads * max(1, cfg.workers)))
        torch.manual_seed(self.child.seed)
        self.net = self.build()
        self.optimizer = torch.optim.SGD(decay_param_groups(self.net, self.child.weight_decay), lr=self.child.lr,
                                         momentum=self.child.momentum, nesterov=self.child.momentum > 0)
        self.steps_per_epoch = self.count_steps()
        self.round_steps = self.oneshot.steps_per_round(cfg.strategy, self.steps_per_epoch)
        self.step = 0  # supernet steps so far
        self.rounds = 0  # rounds finished (round 0: the warm-up epochs)
        self.round_step = 0  # steps of the current round
        self.seconds = 0.0  # training time so far
        self.history: List[dict] = []  # per epoch: mean training loss, inherited accuracy of probe paths
        self._epoch_losses: List[float] = []
        self.board = None  # a TensorBoard writer, set by the search
        if os.path.exists(self.path):
            self.load()
        # torchrun: every process trains the same path on its share of each batch; rank 0 runs the
        # search and saves, the others follow its rounds (:func:`follow_rounds`)
        self.world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.rank = dist.get_rank() if self.world > 1 else 0
        self.model = self.net
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            # a path uses a few of the supernet's ops: the others have no gradient on any rank
            self.model = DistributedDataParallel(self.net, find_unused_parameters=True)

    def epoch_seed(self, epoch: int) -> int:
        """The seed of an epoch's data order and augmentation: a resumed run draws the same batches."""
        return step_seed(self.child.seed, epoch)

    # -- task hooks ----------------------------------------------------------------------------
    def build(self) -> nn.Module:
        """The network to train; also sets ``train_set`` (a sized dataset) and ``train_name``."""
        raise NotImplementedError

    def batches(self, epoch: int) -> Iterable:
        """The minibatches of ``train_set`` in epoch ``epoch``'s seeded order (may be endless: an
        epoch takes the first ``steps_per_epoch``)."""
        raise NotImplementedError

    def loss(self, batch, genotype: genotypes.Genotype) -> torch.Tensor:
        raise NotImplementedError

    def probe(self, paths: List[genotypes.Genotype]) -> Optional[float]:
        """The mean held-out score of ``paths`` with the current weights (None: the task has no cheap one)."""
        return None

    def count_steps(self) -> int:
        n = len(self.train_set) // self.child.batch_size
        if n < 1:
            raise SearchError(f"{self.train_name} has {len(self.train_set)} training images, fewer than one batch "
                              f"of {self.child.batch_size}: lower --child-batch-size")
        return n if self.child.max_train_batches is None else min(n, self.child.max_train_batches)

    # -- schedule --------------------------------------------------------------------------------
    def due(self, started: int) -> bool:
        """Whether a round must be trained before child number ``started`` (0-based) is scored."""
        wanted = 1 + (started // self.oneshot.round_children if self.round_steps else 0)
        return self.rounds < wanted

    def _round_length(self) -> int:
        return self.oneshot.epochs * self.steps_per_epoch if self.rounds == 0 else self.round_steps

    def _lr(self) -> float:
        low = self.oneshot.round_lr
        if self.rounds > 0:
            return self.child.lr * low
        total = max(1, self._round_length())
        # a linear warm-up over the first epoch: early steps on ever-changing paths diverge at full lr
        warmup = min(1.0, (self.round_step + 1) / self.steps_per_epoch)
        return warmup * self.child.lr * (low + (1 - low) * 0.5 * (1 + math.cos(math.pi * self.round_step / total)))

    def train_round(self, sampler: Optional[Callable[[int], List[int]]] = None, stop_at: Optional[int] = None) -> None:
        """Train the next round: round 0 on uniform paths, later rounds on ``sampler``'s. With
        ``stop_at``, pause once the round has taken that many steps (a later call continues it)."""
        if self.world > 1 and self.rank == 0:
            dist.broadcast_object_list(["round"], src=0)  # the followers train this round too
        if self.rounds == 0 or sampler is None:
            sampler = uniform_sampler(self.space, self.child.seed)
        full = self._round_length()
        length = full if stop_at is None else min(full, stop_at)
        bar = None
        if self.progress and self.rank == 0 and length > self.round_step:
            from tqdm import tqdm

            bar = tqdm(total=length, initial=self.round_step, unit="step", dynamic_ncols=True,
                       desc="supernet warm-up" if self.rounds == 0 else f"supernet round {self.rounds}")
        self.net.train()
        try:
            while self.round_step < length:
                # from where this epoch stands (mid-epoch after a resume, or after a round that ended there)
                epoch, position = divmod(self.step, self.steps_per_epoch)
                for batch in itertools.islice(self.batches(epoch), position, self.steps_per_epoch):
                    start = time.perf_counter()
                    self._train_step(batch, sampler)
                    self.seconds += time.perf_counter() - start
                    self._epoch_losses.append(self.last_loss)
                    if self.step % self.steps_per_epoch == 0:
                        self._end_epoch()
                    if bar is not None:
                        bar.update(1)
                    if self.round_step >= length:
                        break
                if self.round_step < length:
                    self.save()  # every epoch: a kill loses at most one epoch (the round's end saves below)
        finally:
            if bar is not None:
                bar.close()
        if self.round_step >= full:
            self.rounds, self.round_step = self.rounds + 1, 0
        self.save()

    def _end_epoch(self) -> None:
        """Record the epoch's mean loss and the inherited score of fixed random probe paths."""
        if self.rank != 0:
            self._epoch_losses = []
            return
        score = None
        if self.oneshot.probes:
            probes = [self.space.decode(self.space.random_at(self.child.seed + 1, 10_000 + i))
                      for i in range(self.oneshot.probes)]
            state = {k: v.clone() for k, v in self.net.state_dict().items()}
            score = self.probe(probes)
            self.net.load_state_dict(state)  # probing re-estimates BN statistics: training keeps its own
            self.net.train()
        epoch = self.step // self.steps_per_epoch
        entry = {"epoch": epoch, "step": self.step, "loss": sum(self._epoch_losses) / max(1, len(self._epoch_losses)),
                 "inherited": score}
        self.history = [h for h in self.history if h["epoch"] < epoch] + [entry]
        self._epoch_losses = []
        if self.board is not None:
            self.board.add_scalar("supernet/loss", entry["loss"], epoch)
            if score is not None:
                self.board.add_scalar("supernet/inherited_accuracy_random_paths", score, epoch)

    def close(self) -> None:
        """The search is over: release the processes that follow this one's rounds."""
        if self.world > 1 and self.rank == 0:
            dist.broadcast_object_list(["stop"], src=0)

    def _paths(self, sampler) -> List[List[int]]:
        if self.rounds == 0 and self.oneshot.sampling == "fair":
            return fair_paths(self.space, self.child.seed, self.step)
        return [sampler(self.step)]

    def _train_step(self, batch, sampler) -> None:
        paths = [self._paths(sampler) if self.rank == 0 else None]
        if self.world > 1:
            dist.broadcast_object_list(paths, src=0)  # the same paths for every process
            batch = self.shard(batch)
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr()
        self.optimizer.zero_grad(set_to_none=True)  # ops off the paths keep no gradient and no decay
        total = 0.0
        for decisions in paths[0]:  # FairNAS: one accumulated update over its paths
            loss = self.loss(batch, self.space.decode(decisions))
            if not torch.isfinite(loss):
                raise SearchError(f"supernet loss is {loss.item()} at step {self.step}: lower --child-lr "
                                  f"(now {self.child.lr}) and search into another --out")
            (loss / len(paths[0])).backward()
            total += loss.item()
        self.last_loss = total / len(paths[0])
        nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
        self.optimizer.step()
        self.step += 1
        self.round_step += 1

    def shard(self, batch):
        """This process's share of a global batch."""
        return batch[self.rank::self.world]

    # -- persistence -----------------------------------------------------------------------------
    def save(self) -> None:
        if self.rank != 0:
            return
        torch_save({"model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
                    "rounds": self.rounds, "round_step": self.round_step, "seconds": self.seconds,
                    "space": self.space.describe(), "child": size_of(self.child),
                    "share_inputs": self.oneshot.share_inputs, "recipe": self.oneshot.recipe,
                    "history": self.history}, self.path)

    def load(self) -> None:
        state = read_supernet(self.path, self.space, self.child)
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.rounds, self.round_step = state["step"], state["rounds"], state["round_step"]
        self.seconds = state["seconds"]
        self.history = list(state.get("history", []))


SIZE_FIELDS = ("dataset", "img_size", "num_cells", "num_conv_filters", "stem_multiplier")


def size_of(child: ChildConfig) -> dict:
    """The child settings that fix a supernet's shapes (stored in ``supernet.pt``)."""
    return {k: getattr(child, k) for k in SIZE_FIELDS}


def read_supernet(path: str, space: Optional[SearchSpace] = None, child: Optional[ChildConfig] = None) -> dict:
    """``supernet.pt``'s contents, loaded as tensors and plain data only (``weights_only``: a crafted
    file runs no code). With ``space`` / ``child``, a supernet of another space or size is one
    :class:`SearchError` naming the difference."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SearchError(f"supernet file not found: {path}") from None
    except Exception as e:
        raise SearchError(f"cannot read {path} as a supernet (tensors and plain data only): {load_refusal(e)}") from None
    if not isinstance(state, dict) or "model" not in state or "space" not in state:
        raise SearchError(f"{path} is not a supernet.pt (no 'model' and 'space' entries)")
    if space is not None and state["space"] != space.describe():
        diffs = [f"{k} {state['space'].get(k)!r} (this run: {v!r})" for k, v in space.describe().items()
                 if state["space"].get(k) != v]
        raise SearchError(f"{path} holds a supernet of another space: {'; '.join(diffs)}")
    stored = state.get("child")
    if child is not None and isinstance(stored, dict):
        diffs = [f"{k} {stored.get(k)!r} (this run: {v!r})" for k, v in size_of(child).items() if stored.get(k) != v]
        if diffs:
            raise SearchError(f"{path} holds a supernet of another size: {'; '.join(diffs)}")
    return state


def follow_rounds(trainer: SupernetTrainer) -> None:
    """A torchrun process other than rank 0: train each round rank 0 trains, until it stops."""
    while True:
        command = [None]
        dist.broadcast_object_list(command, src=0)
        if command[0] == "stop":
            return
        trainer.train_round()


def child_params(net: SuperNet, genotype: genotypes.Genotype) -> int:
    """Parameters of the stand-alone child (its inherited weights, without BN statistics)."""
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    return sum(v.numel() for k, v in net.child_state_dict(genotype).items() if not k.endswith(buffers))


# ------------------------------------------------------------------------------------------------
# The evaluator of --method oneshot, run in the search's workers.

_LOADED: Dict[str, tuple] = {}  # per worker: supernet file -> (its stamp, the scoring state)


def load_when_changed(settings: dict, build: Callable[[Optional[tuple]], tuple]) -> tuple:
    """The scoring state of the search in ``settings["out"]``, rebuilt by ``build(previous state or
    None)`` only when ``supernet.pt`` has changed since this worker last read it."""
    path = os.path.join(settings["out"], SupernetTrainer.filename)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise SearchError(f"{path} is missing: the supernet trains before children are scored") from None
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _LOADED.get(path)
    if cached is None or cached[0] != stamp:
        cached = _LOADED[path] = (stamp, build(None if cached is None else cached[1]))
    return cached[1]


def load_weights(settings: dict, model: nn.Module) -> None:
    model.load_state_dict(read_supernet(os.path.join(settings["out"], SupernetTrainer.filename))["model"])


def oneshot_evaluator(genotype_dict: dict, settings: dict) -> dict:
    """A child's reward with inherited weights: the task's ``evaluate`` (:mod:`.tasks`), in the worker."""
    from .tasks import load_task

    cfg = search_config(settings)
    torch.set_num_threads(max(1, cfg.child.threads))
    return load_task(cfg.task).evaluate(genotype_dict, settings)
