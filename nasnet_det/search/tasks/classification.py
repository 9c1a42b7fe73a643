"""The classification task of the one-shot search (``--task classification``, the default): the
supernet trained on the children's classification data, a child's reward its held-out accuracy with
the supernet's weights after BN recalibration. A peer of :mod:`nasnet_det.detection.oneshot`, read
through the same task protocol (:mod:`nasnet_det.search.tasks`)."""
from __future__ import annotations

import dataclasses
import time
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ... import genotypes
from ...errors import SearchError
from ...modeling.layout import NASNetConfig
from ..child import ChildConfig, child_data, child_options, held_out_accuracy
from ..config import OneShotConfig, search_config
from ..oneshot import SupernetTrainer, child_params, load_weights, load_when_changed, read_supernet
from ..space import SearchSpace
from ..supernet import SuperNet, parse_recipe, recalibrate_batch_norm


class ClassificationSupernet(SupernetTrainer):
    """The supernet on the child's classification data (the paper's reward, with shared weights)."""

    def build(self) -> SuperNet:
        self.data = child_data(self.child.dataset, self.child.img_size)
        self.train_set, self.train_name = self.data.train, self.child.dataset
        return build_supernet(self.space, self.child, self.data.num_classes, self.data.img_size,
                              self.oneshot.share_inputs, self.oneshot.recipe)

    def batches(self, epoch: int):
        torch.manual_seed(self.epoch_seed(epoch))  # the augmentation's draws
        generator = torch.Generator().manual_seed(self.epoch_seed(epoch))
        return DataLoader(self.train_set, batch_size=self.child.batch_size, shuffle=True, drop_last=True,
                          generator=generator)

    def shard(self, batch):
        x, y = batch
        return x[self.rank::self.world], y[self.rank::self.world]

    def probe(self, paths: List[genotypes.Genotype]) -> Optional[float]:
        calibration = calibration_batches(self.data, self.child, self.oneshot.calibration_batches)
        return sum(score_child(self.net, g, self.data, calibration) for g in paths) / len(paths)

    def loss(self, batch, genotype: genotypes.Genotype) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.model(x, genotype), y)


def build_supernet(space: SearchSpace, child: ChildConfig, num_classes: int, img_size: int,
                   share_inputs: bool = False, recipe: str = "all") -> SuperNet:
    """The supernet of ``space`` at the size of the search's children."""
    return SuperNet(space, NASNetConfig(**child_options(child, num_classes, img_size)), share_inputs,
                    parse_recipe(recipe))


def calibration_batches(data, child: ChildConfig, count: int) -> List[torch.Tensor]:
    """The same ``count`` training batches for every child (a score depends on the genotype only)."""
    torch.manual_seed(child.seed)
    loader = DataLoader(data.train, batch_size=child.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(child.seed))
    out = []
    for x, _ in loader:
        out.append(x)
        if len(out) == count:
            break
    return out


def score_child(net: SuperNet, genotype: genotypes.Genotype, data, calibration: Sequence[torch.Tensor]) -> float:
    """Held-out accuracy of ``genotype`` with the supernet's weights, after BN recalibration."""
    recalibrate_batch_norm(net, calibration, lambda model, x: model(x, genotype))
    net.eval()
    return held_out_accuracy(lambda x: net(x, genotype), data.val)


def load_supernet_for_scoring(path: str, child: ChildConfig):
    """(supernet, data, calibration batches) from a ``supernet.pt`` alone, for ``nasnet-det rank``:
    the supernet's size is the one stored in the file (``child`` gives the rest: seed, batch size)."""
    state = read_supernet(path)
    stored = state.get("child")
    if not isinstance(stored, dict):
        raise SearchError(f"{path} does not record the size it was trained at (written by an older version): "
                          "train it again")
    child = dataclasses.replace(child, **stored)
    space = SearchSpace.from_description(state["space"])
    data = child_data(child.dataset, child.img_size)
    net = build_supernet(space, child, data.num_classes, data.img_size, state.get("share_inputs", False),
                         state.get("recipe", "none"))
    try:
        net.load_state_dict(state["model"])
    except RuntimeError as e:
        raise SearchError(f"{path} does not fit a supernet of its recorded size: {' '.join(str(e).split())[:300]}") from None
    return net, data, calibration_batches(data, child, 2)


def _scoring_state(settings: dict):
    """(supernet, data, calibration batches) of a classification search, as ``supernet.pt`` now is."""
    cfg = search_config(settings)

    def build(previous):
        data = child_data(cfg.child.dataset, cfg.child.img_size)
        net = previous[0] if previous is not None else build_supernet(
            cfg.space, cfg.child, data.num_classes, data.img_size, cfg.oneshot.share_inputs, cfg.oneshot.recipe)
        load_weights(settings, net)
        return net, data, calibration_batches(data, cfg.child, cfg.oneshot.calibration_batches)

    return load_when_changed(settings, build)


def evaluate(genotype_dict: dict, settings: dict) -> dict:
    """A child's reward: its held-out accuracy with the supernet's weights."""
    start = time.perf_counter()
    net, data, calibration = _scoring_state(settings)
    genotype = genotypes.Genotype.from_dict(genotype_dict)
    reward = score_child(net, genotype, data, calibration)
    return {"reward": reward, "params": child_params(net, genotype), "seconds": time.perf_counter() - start}


# the task protocol (nasnet_det.search.tasks)
SUPERNET = ClassificationSupernet
CHILD_DEFAULTS: dict = {}
METRICS: tuple = ()  # one reward: held-out accuracy


def check(cfg) -> None:
    """Classification has one reward, so no ``--oneshot-metric`` (its dataset is checked by the search)."""
    if cfg.oneshot.metric != OneShotConfig.metric:
        raise SearchError(f"--oneshot-metric {cfg.oneshot.metric!r}: classification has one reward (held-out "
                          "accuracy); the metric is for tasks with several (--task detection: AP50 or AP)")
