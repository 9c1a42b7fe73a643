"""A training stream that resumes exactly: what iteration i reads and draws is a function of
(seed, i, rank) alone.

Detectron2's loader is a stream: its sampler's generator, the aspect-ratio buckets and the
augmentations' global RNG all carry state from the first iteration on, and none of it is in a
checkpoint, so a resumed run starts the data order over and draws other flips and other ROI
samples. Here, as torchvision's reference scripts group batches with a batch sampler:

- :class:`StreamDataset`: position p of the infinite shuffled order maps to record
  ``perm_e[p mod n]`` (one seeded permutation per pass e, Detectron2's TrainingSampler order) and is
  augmented under a seed of its own, so any worker can produce it, in any order;
- :class:`GroupedBatches`: the batches of this rank's positions, grouped by aspect ratio as
  Detectron2's ``AspectRatioGroupedDataset`` groups them. Its state at iteration i is recomputed from
  the records' sizes (no image is read), so a resumed run starts with the same half-filled buckets;
- :class:`StepSeeds`: a hook that seeds torch, numpy and random before every step from (seed,
  iteration, rank): the ROI sampling, drop path and any other draw of the model.

The seed itself is stored in every checkpoint (:class:`StreamState`), so ``SEED -1`` (a drawn seed)
resumes exactly too.
"""
from __future__ import annotations

import hashlib
import logging
import random
from typing import Iterator, List, Optional

import numpy as np
import torch
from detectron2.data.build import trivial_batch_collator
from detectron2.data.common import DatasetFromList
from detectron2.engine import HookBase
from detectron2.utils import comm

from ..errors import DatasetError

logger = logging.getLogger(__name__)


def mix(*parts) -> int:
    """A 63-bit seed from ``parts`` (stable across processes and runs, unlike ``hash``)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2 ** 63 - 1)


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


class StreamDataset(torch.utils.data.Dataset):
    """Position -> the mapped record at that place of the shuffled stream (see the module)."""

    def __init__(self, dicts: List[dict], mapper, seed: int):
        if not dicts:
            raise DatasetError("the training set has no images")
        # width > height is the bucket AspectRatioGroupedDataset puts an image in
        self.wide = [int(d.get("width", 1) > d.get("height", 1)) for d in dicts]
        self.records = DatasetFromList(dicts, copy=False)  # serialized: workers share it without copies
        self.mapper, self.seed = mapper, int(seed)
        self._order = (None, None)

    def __len__(self) -> int:  # one pass; positions run past it (the stream is infinite)
        return len(self.wide)

    def index(self, position: int) -> int:
        n = len(self.wide)
        epoch, offset = divmod(position, n)
        if self._order[0] != (self.seed, epoch):
            g = torch.Generator()
            g.manual_seed(mix(self.seed, "order", epoch))
            self._order = ((self.seed, epoch), torch.randperm(n, generator=g).tolist())
        return self._order[1][offset]

    def __getitem__(self, position: int) -> dict:
        index = self.index(position)
        for attempt in range(10):  # a mapper may reject a record (a crop without boxes): another, chosen by seed
            seed_all(mix(self.seed, "augment", position, attempt))
            mapped = self.mapper(self.records[index])
            if mapped is not None:
                return mapped
            index = mix(self.seed, "retry", position, attempt) % len(self.wide)
        raise DatasetError(f"the dataset mapper rejected 10 records in a row at stream position {position}: "
                           "check the augmentations (nasnet-det check-dataset checks the records)")


class GroupedBatches(torch.utils.data.Sampler):
    """This rank's batches of stream positions from iteration ``start`` on (rank r of w reads
    global positions r, r + w, ...: Detectron2's TrainingSampler split)."""

    def __init__(self, dataset: StreamDataset, batch_size: int, grouping: bool = True,
                 rank: Optional[int] = None, world: Optional[int] = None):
        self.dataset, self.batch_size, self.grouping = dataset, batch_size, grouping
        self.rank = comm.get_rank() if rank is None else rank
        self.world = comm.get_world_size() if world is None else world
        self.start = 0

    def __iter__(self) -> Iterator[List[int]]:
        buckets = {0: [], 1: []}
        iteration, position = 0, self.rank
        while True:
            bucket = self.dataset.wide[self.dataset.index(position)] if self.grouping else 0
            buckets[bucket].append(position)
            position += self.world
            if len(buckets[bucket]) == self.batch_size:
                batch, buckets[bucket] = buckets[bucket], []
                if iteration >= self.start:
                    yield batch
                iteration += 1


def build_stream_loader(dicts: List[dict], mapper, seed: int, batch_size: int, grouping: bool,
                        num_workers: int) -> torch.utils.data.DataLoader:
    """A DataLoader of lists of mapped records (what Detectron2's trainer reads), resumable exactly:
    set ``loader.batch_sampler.start`` (and the seed, :class:`StreamState`) before iterating."""
    dataset = StreamDataset(dicts, mapper, seed)
    return torch.utils.data.DataLoader(dataset, batch_sampler=GroupedBatches(dataset, batch_size, grouping),
                                       num_workers=num_workers, collate_fn=trivial_batch_collator)


class StreamState:
    """The stream's seed as a checkpointable (a plain int: loads with ``weights_only=True``)."""

    def __init__(self, loader: torch.utils.data.DataLoader):
        self.loader = loader

    @property
    def seed(self) -> int:
        return self.loader.dataset.seed

    def state_dict(self) -> dict:
        return {"seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.loader.dataset.seed = int(state["seed"])


class StepSeeds(HookBase):
    """Seed every RNG before each step from (stream seed, iteration, rank)."""

    def __init__(self, state: StreamState):
        self.state = state

    def before_step(self):
        seed_all(mix(self.state.seed, "step", self.trainer.iter, comm.get_rank()))
