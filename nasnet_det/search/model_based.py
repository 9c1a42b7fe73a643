"""Model-based strategies: fit a model of reward to the children seen so far and propose where the
model expects the best (the strategies of :mod:`.strategies` learn only a policy or keep a
population).

- ``tpe`` and ``gp``: optuna's ``TPESampler`` and ``GPSampler`` through its ask/tell interface,
  one categorical parameter per decision of the space (:attr:`SearchSpace.decisions`).
- ``predictor-evolution``: regularized evolution whose mutations are screened by an ensemble of
  small MLPs fitted online to the children seen so far, on a one-hot encoding of the decisions
  (the input choices are the cell's edges, the op choices their labels: BANANAS' adjacency
  encoding, White et al. 2021). Each ask draws ``candidates`` mutations of tournament winners
  and proposes the one the ensemble ranks highest.

Resume is exact without pickling a sampler: the strategy's state is plain data (the trials in
order, with their decisions, state and reward), and every model is a pure function of that
history and the seed. The optuna study is rebuilt from the trials on load; each ask uses a sampler
seeded by ``(seed, number of trials)``, so an ask after ``--resume`` draws what the uninterrupted
run drew. The MLP ensemble is refitted on the same prefix of the history it was fitted on.

A strategy asked for several children before it hears back (``--workers N``) never proposes a
child it has proposed before: a sampler's repeat is marked failed in the study (the model learns
nothing from it) and the sampler asked again, up to ``tries`` times, then an unseen uniform child
is proposed.
"""
from __future__ import annotations

import warnings
from typing import List, Optional

import torch

from ..errors import SearchError
from .space import SearchSpace, step_seed
from .strategies import RegularizedEvolution, Strategy


def _optuna():
    try:
        import optuna
    except ImportError:
        raise SearchError("the tpe and gp strategies need optuna: pip install 'nasnet_det[search]' "
                          "(make install does)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class _Unseen:
    """Decision lists proposed so far; draws an unseen uniform child when a model only repeats."""

    def __init__(self):
        self.keys: set = set()

    def add(self, decisions) -> None:
        self.keys.add(tuple(decisions))

    def __contains__(self, decisions) -> bool:
        return tuple(decisions) in self.keys

    def uniform(self, space: SearchSpace, rng) -> List[int]:
        for _ in range(1000):
            decisions = space.random(rng)
            if decisions not in self:
                return decisions
        raise SearchError("the search space holds no child this search has not proposed yet: lower the budget")


class OptunaStrategy(Strategy):
    """One optuna sampler behind ask/tell; subclasses name the sampler."""

    name = "optuna"

    def __init__(self, space: SearchSpace, seed: int = 0, n_startup_trials: int = 10, tries: int = 8):
        super().__init__(space, seed)
        if n_startup_trials < 0 or tries < 1:
            raise SearchError(f"{self.name}: n_startup_trials must be >= 0 and tries >= 1")
        self.optuna = _optuna()
        self.n_startup_trials, self.tries = n_startup_trials, tries
        self.names = space.names
        self.distributions = {n: self.optuna.distributions.CategoricalDistribution(list(range(len(d.choices))))
                              for n, d in zip(self.names, space.decisions)}
        self.trials: List[list] = []  # [decisions, "running" / "complete" / "fail", reward], in study order
        self.unseen = _Unseen()
        self._study = None

    def sampler(self, seed: int):
        raise NotImplementedError

    def study(self):
        """The optuna study of :attr:`trials` (rebuilt from them after a resume)."""
        if self._study is None:
            optuna = self.optuna
            self._study = optuna.create_study(direction="maximize")
            states = {"running": optuna.trial.TrialState.RUNNING, "complete": optuna.trial.TrialState.COMPLETE,
                      "fail": optuna.trial.TrialState.FAIL}
            for decisions, state, value in self.trials:
                self._study.add_trial(optuna.trial.create_trial(
                    state=states[state], value=value, distributions=self.distributions,
                    params=dict(zip(self.names, decisions))))
        return self._study

    def ask(self) -> dict:
        study = self.study()
        for _ in range(self.tries):
            study.sampler = self.sampler(step_seed(self.seed, len(self.trials)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna's experimental / independent-sampling notes
                trial = study.ask(self.distributions)
            decisions = [trial.params[n] for n in self.names]
            if decisions not in self.unseen:
                self.trials.append([decisions, "running", None])
                self.unseen.add(decisions)
                return {"decisions": decisions, "trial": trial.number}
            study.tell(trial, state=self.optuna.trial.TrialState.FAIL)  # a repeat: nothing to learn
            self.trials.append([decisions, "fail", None])
        decisions = self.unseen.uniform(self.space, self.rng)
        study.add_trial(self.optuna.trial.create_trial(
            state=self.optuna.trial.TrialState.RUNNING, distributions=self.distributions,
            params=dict(zip(self.names, decisions))))
        self.trials.append([decisions, "running", None])
        self.unseen.add(decisions)
        return {"decisions": decisions, "trial": len(self.trials) - 1}

    def tell(self, proposal: dict, reward: float) -> None:
        number = proposal["trial"]
        self.study().tell(number, float(reward))
        self.trials[number][1:] = ["complete", float(reward)]

    def state_dict(self) -> dict:
        return {**super().state_dict(), "trials": self.trials, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.seed = state.get("seed", self.seed)  # the samplers' seeds derive from it
        self.trials = [[list(d), s, v] for d, s, v in state["trials"]]
        self.unseen = _Unseen()
        for decisions, _, _ in self.trials:
            self.unseen.add(decisions)
        self._study = None


class TPE(OptunaStrategy):
    """optuna's Tree-structured Parzen Estimator (multivariate: the decisions are modelled jointly)."""

    name = "tpe"

    def __init__(self, space: SearchSpace, seed: int = 0, n_startup_trials: int = 10, tries: int = 8,
                 multivariate: bool = True, n_ei_candidates: int = 24):
        super().__init__(space, seed, n_startup_trials, tries)
        self.multivariate, self.n_ei_candidates = multivariate, n_ei_candidates

    def sampler(self, seed: int):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials,
                                                   multivariate=self.multivariate, constant_liar=True,
                                                   n_ei_candidates=self.n_ei_candidates)


class GP(OptunaStrategy):
    """optuna's Gaussian-process sampler (log expected improvement). Each ask refits the GP: seconds
    per child at a few hundred children, so it suits budgets of tens to a few hundred."""

    name = "gp"

    def sampler(self, seed: int):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.optuna.samplers.GPSampler(seed=seed, n_startup_trials=self.n_startup_trials)


class PredictorEvolution(RegularizedEvolution):
    """Regularized evolution with each mutation screened by an MLP ensemble (BANANAS-style)."""

    name = "predictor-evolution"

    def __init__(self, space: SearchSpace, seed: int = 0, population_size: int = 20, sample_size: int = 5,
                 candidates: int = 20, ensemble: int = 5, hidden: int = 32, steps: int = 200,
                 refit_every: int = 10):
        super().__init__(space, seed, population_size, sample_size)
        if min(candidates, ensemble, hidden, steps, refit_every) < 1:
            raise SearchError("predictor-evolution: candidates, ensemble, hidden, steps and refit_every must be >= 1")
        self.candidates, self.ensemble, self.hidden = candidates, ensemble, hidden
        self.steps, self.refit_every = steps, refit_every
        self.history: List[list] = []  # [decisions, reward] in the order told
        self.proposed: List[list] = []  # every proposal, in order
        self.unseen = _Unseen()
        self.fit_n = 0  # the model was fitted on history[:fit_n]
        self._model: Optional[list] = None

    # -- the predictor ----------------------------------------------------------------------
    def encode(self, rows) -> torch.Tensor:
        x = torch.zeros(len(rows), sum(self.space.sizes))
        offsets = [0]
        for n in self.space.sizes[:-1]:
            offsets.append(offsets[-1] + n)
        for r, decisions in enumerate(rows):
            x[r, [o + d for o, d in zip(offsets, decisions)]] = 1.0
        return x

    def _fit(self, n: int) -> list:
        """The ensemble fitted to ``history[:n]``: a pure function of that prefix and the seed."""
        x = self.encode([d for d, _ in self.history[:n]])
        y = torch.tensor([r for _, r in self.history[:n]], dtype=torch.float32)
        y = (y - y.mean()) / (y.std() + 1e-8) if n > 1 else y * 0
        models = []
        with torch.random.fork_rng(devices=[]):
            for m in range(self.ensemble):
                torch.manual_seed(step_seed(self.seed, n * 101 + m))
                net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], self.hidden), torch.nn.ReLU(),
                                          torch.nn.Linear(self.hidden, self.hidden), torch.nn.ReLU(),
                                          torch.nn.Linear(self.hidden, 1))
                optimizer = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=1e-4)
                for _ in range(self.steps):
                    loss = torch.nn.functional.mse_loss(net(x).squeeze(1), y)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                models.append(net.eval())
        return models

    def model(self) -> Optional[list]:
        """The ensemble, refitted when ``refit_every`` (or a tenth of the history) new rewards came in."""
        n = len(self.history)
        if n >= max(self.fit_n + max(self.refit_every, self.fit_n // 10), 2):
            self.fit_n, self._model = n, None
        if self._model is None and self.fit_n:
            self._model = self._fit(self.fit_n)
        return self._model

    @torch.no_grad()
    def predict(self, rows) -> List[float]:
        x = self.encode(rows)
        return torch.stack([net(x).squeeze(1) for net in self.model()]).mean(0).tolist()

    # -- ask / tell ---------------------------------------------------------------------------
    def ask(self) -> dict:
        self.asked += 1
        if self.asked <= self.population_size or not self.population or self.model() is None:
            decisions = self.unseen.uniform(self.space, self.rng)
        else:
            pool: List[List[int]] = []
            for _ in range(self.candidates * 5):
                sample = [self.population[self.rng.randrange(len(self.population))] for _ in range(self.sample_size)]
                child = self.space.mutate(max(sample, key=lambda member: member[1])[0], self.rng)
                if child not in self.unseen and child not in pool:
                    pool.append(child)
                if len(pool) == self.candidates:
                    break
            if pool:
                scores = self.predict(pool)
                decisions = pool[max(range(len(pool)), key=lambda i: (scores[i], -i))]
            else:
                decisions = self.unseen.uniform(self.space, self.rng)
        self.unseen.add(decisions)
        self.proposed.append(decisions)
        return {"decisions": decisions}

    def tell(self, proposal: dict, reward: float) -> None:
        super().tell(proposal, reward)
        self.history.append([list(proposal["decisions"]), float(reward)])

    def state_dict(self) -> dict:
        return {**super().state_dict(), "history": self.history, "proposed": self.proposed, "fit_n": self.fit_n,
                "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.seed = state.get("seed", self.seed)  # the ensemble's initialisations derive from it
        self.history = [[list(d), r] for d, r in state["history"]]
        self.proposed = [list(d) for d in state["proposed"]]
        self.unseen = _Unseen()
        for decisions in self.proposed:
            self.unseen.add(decisions)
        self.fit_n, self._model = state["fit_n"], None
