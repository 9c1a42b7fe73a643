"""Search strategies behind one interface: propose architectures (``ask``), learn from their
rewards (``tell``), and save/restore everything they need to continue (``state_dict``).

- ``random``: each decision uniform (the paper's baseline).
- ``ppo``: the paper's controller. A one-layer LSTM (100 units, weights U(-0.1, 0.1)) emits one
  softmax per decision. It is trained with PPO (Adam, lr 0.00035, clip 0.2, entropy weight 1e-5)
  on the reward minus an exponential-moving-average baseline (decay 0.95), every 20 architectures.
- ``evolution``: regularized (aging) evolution as in AmoebaNet. A random population first; then
  tournament selection (best of ``sample_size``), mutation of one input or op, and the oldest
  member dies.

Proposals are plain dicts (JSON-serialisable), so a runner can persist the ones in flight.
"""
from __future__ import annotations

import collections
import random
from typing import List, Optional

import torch
import torch.nn as nn

from ..errors import SearchError
from ..registry import Registry
from .space import SearchSpace, step_seed


class Strategy:
    name = "base"

    def __init__(self, space: SearchSpace, seed: int = 0):
        self.space, self.seed = space, seed
        self.rng = random.Random(seed)

    def ask(self) -> dict:
        raise NotImplementedError

    def tell(self, proposal: dict, reward: float) -> None:
        pass

    def sample(self, step: int) -> List[int]:
        """Decisions of a path to train a one-shot supernet on at ``step`` (the policy's, where the
        strategy has one; else uniform). Reproducible from ``step``; the ask stream is not touched."""
        return self.space.random_at(self.seed, step)

    def state_dict(self) -> dict:
        return {"rng": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        self.rng.setstate(_as_rng_state(state["rng"]))


def _as_rng_state(state):
    # random.Random state round-trips through torch.save as nested tuples/lists
    version, internal, gauss = state
    return version, tuple(internal), gauss


class RandomSearch(Strategy):
    name = "random"

    def ask(self) -> dict:
        return {"decisions": self.space.random(self.rng)}


class RegularizedEvolution(Strategy):
    name = "evolution"

    def __init__(self, space: SearchSpace, seed: int = 0, population_size: int = 20, sample_size: int = 5):
        super().__init__(space, seed)
        if not 1 <= sample_size <= population_size:
            raise SearchError(f"need 1 <= sample_size ({sample_size}) <= population_size ({population_size})")
        self.population_size, self.sample_size = population_size, sample_size
        self.population: collections.deque = collections.deque()  # (decisions, reward), oldest first
        self.asked = 0

    def ask(self) -> dict:
        self.asked += 1
        if self.asked <= self.population_size or not self.population:
            return {"decisions": self.space.random(self.rng)}
        sample = [self.population[self.rng.randrange(len(self.population))] for _ in range(self.sample_size)]
        parent = max(sample, key=lambda member: member[1])
        return {"decisions": self.space.mutate(parent[0], self.rng)}

    def tell(self, proposal: dict, reward: float) -> None:
        self.population.append((list(proposal["decisions"]), float(reward)))
        if len(self.population) > self.population_size:
            self.population.popleft()  # aging: the oldest dies, whatever its reward

    def state_dict(self) -> dict:
        return {**super().state_dict(), "population": list(self.population), "asked": self.asked}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.population = collections.deque((list(d), r) for d, r in state["population"])
        self.asked = state["asked"]


class Controller(nn.Module):
    """LSTM that emits the decisions one by one, each conditioned on the previous choice."""

    def __init__(self, sizes: List[int], hidden: int = 100, init_range: float = 0.1):
        super().__init__()
        self.sizes = list(sizes)
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.embeddings = nn.ModuleList(nn.Embedding(n, hidden) for n in sizes)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in sizes)
        for p in self.parameters():
            nn.init.uniform_(p, -init_range, init_range)

    def forward(self, actions: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None):
        """Sample (or score given ``actions`` [batch, n]); returns actions, log-prob sum, entropy sum."""
        batch = 1 if actions is None else actions.shape[0]
        x = self.start.expand(batch, -1)
        state = None
        chosen, logp, entropy = [], 0.0, 0.0
        for i, (head, embed) in enumerate(zip(self.heads, self.embeddings)):
            h, c = self.lstm(x, state)
            state = (h, c)
            log_probs = torch.log_softmax(head(h), dim=-1)
            if actions is None:
                a = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(1)
            else:
                a = actions[:, i]
            logp = logp + log_probs.gather(1, a[:, None]).squeeze(1)
            entropy = entropy - (log_probs.exp() * log_probs).sum(-1)
            chosen.append(a)
            x = embed(a)
        return torch.stack(chosen, 1), logp, entropy


class PPOController(Strategy):
    name = "ppo"

    def __init__(self, space: SearchSpace, seed: int = 0, hidden: int = 100, lr: float = 0.00035,
                 entropy_weight: float = 1e-5, baseline_decay: float = 0.95, batch_size: int = 20,
                 ppo_epochs: int = 4, clip: float = 0.2):
        super().__init__(space, seed)
        torch.manual_seed(seed)  # controller init; sampling has its own generator below
        self.controller = Controller(space.sizes, hidden)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.entropy_weight, self.baseline_decay = entropy_weight, baseline_decay
        self.batch_size, self.ppo_epochs, self.clip = batch_size, ppo_epochs, clip
        self.baseline: Optional[float] = None
        self.buffer: List[dict] = []  # (decisions, old log-prob, advantage) awaiting an update
        self.updates = 0

    @torch.no_grad()
    def ask(self) -> dict:
        actions, logp, _ = self.controller(generator=self.generator)
        return {"decisions": actions[0].tolist(), "logp": float(logp[0])}

    @torch.no_grad()
    def sample(self, step: int) -> List[int]:
        generator = torch.Generator().manual_seed(step_seed(self.seed, step))
        actions, _, _ = self.controller(generator=generator)
        return actions[0].tolist()

    def tell(self, proposal: dict, reward: float) -> None:
        reward = float(reward)
        # advantage against the baseline before this reward moves it
        advantage = 0.0 if self.baseline is None else reward - self.baseline
        self.baseline = reward if self.baseline is None else (
            self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward)
        self.buffer.append({"decisions": list(proposal["decisions"]), "logp": proposal["logp"], "advantage": advantage})
        if len(self.buffer) >= self.batch_size:
            self._update()

    def _update(self) -> None:
        actions = torch.tensor([b["decisions"] for b in self.buffer])
        old_logp = torch.tensor([b["logp"] for b in self.buffer])
        advantage = torch.tensor([b["advantage"] for b in self.buffer])
        for _ in range(self.ppo_epochs):
            _, logp, entropy = self.controller(actions)
            ratio = torch.exp(logp - old_logp)
            surrogate = torch.min(ratio * advantage, ratio.clamp(1 - self.clip, 1 + self.clip) * advantage)
            loss = -surrogate.mean() - self.entropy_weight * entropy.mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.buffer.clear()
        self.updates += 1

    def state_dict(self) -> dict:
        return {**super().state_dict(), "controller": self.controller.state_dict(),
                "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                "baseline": self.baseline, "buffer": self.buffer, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline, self.buffer, self.updates = state["baseline"], list(state["buffer"]), state["updates"]


class Replay(Strategy):
    """Asks the given children in order and learns nothing: the promotion rungs of successive
    halving (:mod:`.promote`), which re-score the previous rung's best at a higher fidelity."""

    name = "replay"  # run by --promote's rungs (hidden: not a --strategy choice)

    def __init__(self, space: SearchSpace, seed: int = 0, decisions=()):
        super().__init__(space, seed)
        if not decisions:
            raise SearchError("the replay strategy asks given children: --strategy-option decisions=[[...], ...] "
                              "(it runs the rungs of --promote)")
        self.decisions = [list(d) for d in decisions]
        for d in self.decisions:
            space.decode(d)  # a decision list of another space is one line now
        self.asked = 0

    def ask(self) -> dict:
        if self.asked >= len(self.decisions):
            raise SearchError(f"the replay strategy holds {len(self.decisions)} children; the budget is larger")
        self.asked += 1
        return {"decisions": self.decisions[self.asked - 1]}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "asked": self.asked}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.asked = state["asked"]


# the strategies, registered at the bottom as timm registers its models; the model-based ones are
# lazy entries (they need optuna, which a search with another strategy never imports)
STRATEGIES = Registry("strategy", SearchError)
STRATEGIES.register("ppo", PPOController, help="the paper's controller (REINFORCE with a baseline, PPO clipping)")
STRATEGIES.register("random", RandomSearch, help="uniform children")
STRATEGIES.register("evolution", RegularizedEvolution, help="regularized evolution (Real et al., AmoebaNet)")
STRATEGIES.register("replay", Replay, hidden=True, help="asks given children in order (--promote's rungs)")
STRATEGIES.register_lazy("tpe", "nasnet_det.search.model_based:TPE", help="optuna's multivariate TPE")
STRATEGIES.register_lazy("gp", "nasnet_det.search.model_based:GP", help="optuna's Gaussian-process sampler")
STRATEGIES.register_lazy("predictor-evolution", "nasnet_det.search.model_based:PredictorEvolution",
                         help="regularized evolution, each mutation screened by an MLP ensemble")


def strategy_class(name: str) -> type:
    return STRATEGIES.get(name)


def public_strategies() -> list:
    """The names ``--strategy`` takes (``replay`` is run by the search itself)."""
    return STRATEGIES.names()


def build_strategy(name: str, space: SearchSpace, seed: int = 0, **options) -> Strategy:
    return strategy_class(name)(space, seed=seed, **options)
