"""The search's work queue: children trained by a pool of local processes or by Ray tasks.

Everything needed to continue is in the run folder, written atomically:
- ``trials.jsonl``: one JSON object per finished attempt. An attempt is finished when its child
  returned a reward or raised. Fields: ``id``, ``genotype``, ``status`` ("ok" / "failed"),
  ``reward``, ``seconds``, ``attempt``, ``final``, ``error``. Lines are appended with fsync, and a
  torn last line is ignored on resume.
- ``state.pt``: the strategy state, the proposals in flight, attempt counts, and which results
  the strategy has already learned from. It is rewritten after every ask and every result.
- ``search.json``: the configuration.

``--resume`` re-submits the children in flight and replays results the strategy had not yet
learned from, so the run ends with exactly ``budget`` completed children.

Failures:
- A child that raises (NaN loss, out of memory, a bug) is recorded as a failed attempt and
  retried ``retries`` times; then it gets ``failure_reward``.
- A worker process or Ray node that dies mid-child gets the child re-queued; that is not counted
  as an attempt.
"""
from __future__ import annotations

import concurrent.futures as cf
import importlib
import json
import logging
import multiprocessing as mp
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch

from .. import genotypes as G
from ..io import atomic_path, torch_save, write_json, write_text
from .child import ChildConfig
from .space import SearchSpace
from .strategies import build_strategy, sep_conv_fraction

logger = logging.getLogger("nasnet_det.search")

MAX_LOST = 3  # a child whose worker died this often is treated as failing, not re-queued forever


@dataclass
class SearchConfig:
    strategy: str = "ppo"
    budget: int = 20
    workers: int = 2
    backend: str = "local"  # "local" or "ray"
    ray_address: Optional[str] = None  # None: start a local Ray; "auto" or host:port: join a cluster
    gpus_per_child: float = 0.0  # Ray: GPUs requested per child (1 on a GPU cluster)
    out: str = "runs/search"
    seed: int = 0
    retries: int = 1
    failure_reward: float = 0.0
    top_k: int = 10
    num_blocks: int = 5
    ops: Tuple[str, ...] = G.PAPER_OPS
    combines: Tuple[str, ...] = ("add",)
    strategy_options: dict = field(default_factory=dict)  # e.g. {"lr": 0.003} or {"population_size": 50}
    evaluator: str = "train"  # "train" (child training), "synthetic" (sep-conv fraction) or "module:function"
    child: ChildConfig = field(default_factory=ChildConfig)
    synthetic_seconds: float = 0.0  # the synthetic evaluator's pretend training time
    progress: bool = True


class SearchError(ValueError):
    """A search that cannot start or continue; the message says why."""


# ------------------------------------------------------------------------------------------------
# Evaluators (run inside workers; module-level so they can be pickled by reference)

def synthetic_evaluator(genotype_dict: dict, options: dict) -> dict:
    start = time.perf_counter()
    time.sleep(options.get("seconds", 0.0))
    reward = sep_conv_fraction(G.Genotype.from_dict(genotype_dict))
    return {"reward": reward, "seconds": time.perf_counter() - start}


def training_evaluator(genotype_dict: dict, options: dict) -> dict:
    from .child import train_child
    return train_child(genotype_dict, ChildConfig(**options))


def resolve_evaluator(name: str) -> Callable[[dict, dict], dict]:
    if name == "train":
        return training_evaluator
    if name == "synthetic":
        return synthetic_evaluator
    module, _, function = name.partition(":")
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError, ValueError) as e:
        raise SearchError(f"evaluator {name!r}: expected train, synthetic or module:function ({e})") from None


def run_evaluation(evaluator: str, genotype_dict: dict, options: dict) -> dict:
    result = resolve_evaluator(evaluator)(genotype_dict, options)
    reward = float(result["reward"])
    if reward != reward:  # NaN
        raise FloatingPointError("reward is NaN")
    return {**result, "reward": reward}


# ------------------------------------------------------------------------------------------------
# Backends: submit(id, args), wait() -> (id, kind, payload); kind in ok / error / lost

class LocalBackend:
    def __init__(self, workers: int):
        self.workers = workers
        self._pool = self._new_pool()
        self._futures: Dict[cf.Future, tuple] = {}  # future -> (child id, the pool running it)

    def _new_pool(self):
        # spawn: a clean interpreter per worker (forking a process that has run torch threads can hang)
        return cf.ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"))

    def _restart(self):
        """A worker died and broke the pool: start a fresh one. The old pool's futures resolve as
        BrokenProcessPool and are reported lost by ``wait``."""
        old, self._pool = self._pool, self._new_pool()
        old.shutdown(wait=False, cancel_futures=True)

    def running(self) -> int:
        return len(self._futures)

    def submit(self, child_id: int, args: tuple) -> None:
        try:
            future = self._pool.submit(run_evaluation, *args)
        except cf.process.BrokenProcessPool:  # broke since the last wait(), e.g. a worker was killed
            self._restart()
            future = self._pool.submit(run_evaluation, *args)
        self._futures[future] = (child_id, self._pool)

    def wait(self) -> List[Tuple[int, str, object]]:
        done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
        results, restart = [], False
        for future in done:
            child_id, pool = self._futures.pop(future)
            try:
                results.append((child_id, "ok", future.result()))
            except cf.process.BrokenProcessPool as e:
                restart = restart or pool is self._pool
                results.append((child_id, "lost", f"worker process died: {e}"))
            except BaseException as e:  # the child's own failure, raised in the worker
                results.append((child_id, "error", f"{type(e).__name__}: {e}"))
        if restart:
            self._restart()
        return results

    def close(self):
        self._pool.shutdown(wait=False, cancel_futures=True)


class RayBackend:
    def __init__(self, workers: int, address: Optional[str], gpus_per_child: float):
        try:
            import ray
        except ImportError:
            raise SearchError("the ray backend needs Ray: pip install 'ray>=2.9'") from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                     log_to_driver=False, ignore_reinit_error=True)
        # Ray re-runs a task whose worker or node died (max_retries); exceptions raised by the child
        # itself are not retried by Ray but by the runner, so they are counted and recorded.
        self._remote = ray.remote(num_cpus=1, num_gpus=gpus_per_child, max_retries=2)(run_evaluation)
        self._refs: Dict[object, int] = {}
        self.workers = workers

    def running(self) -> int:
        return len(self._refs)

    def submit(self, child_id: int, args: tuple) -> None:
        self._refs[self._remote.remote(*args)] = child_id

    def wait(self):
        ready, _ = self.ray.wait(list(self._refs), num_returns=1)
        results = []
        for ref in ready:
            child_id = self._refs.pop(ref)
            try:
                results.append((child_id, "ok", self.ray.get(ref)))
            except self.ray.exceptions.RayTaskError as e:
                results.append((child_id, "error", str(e.cause if e.cause is not None else e).splitlines()[-1]))
            except self.ray.exceptions.RayError as e:  # worker/node died beyond Ray's own retries
                results.append((child_id, "lost", f"{type(e).__name__}: {e}"))
        return results

    def close(self):
        for ref in self._refs:
            self.ray.cancel(ref, force=True)


# ------------------------------------------------------------------------------------------------

def read_trials(path: str) -> List[dict]:
    """The trials log; a torn last line (a kill during the write) is dropped."""
    trials = []
    if not os.path.exists(path):
        return trials
    with open(path) as f:
        for line in f:
            try:
                trials.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("ignoring a torn line in %s", path)
    return trials


class SearchRunner:
    def __init__(self, cfg: SearchConfig, resume: bool = False):
        self.cfg = cfg
        self.space = SearchSpace(cfg.num_blocks, cfg.ops, cfg.combines)
        self.strategy = build_strategy(cfg.strategy, self.space, seed=cfg.seed, **cfg.strategy_options)
        resolve_evaluator(cfg.evaluator)  # fail now, not inside a worker
        self.trials_path = os.path.join(cfg.out, "trials.jsonl")
        self.state_path = os.path.join(cfg.out, "state.pt")
        self.pending: Dict[int, dict] = {}  # asked, not completed: id -> proposal
        self.attempts: Dict[int, int] = {}  # failed attempts so far
        self.lost: Dict[int, int] = {}
        self.told: set = set()
        self.next_id = 0
        os.makedirs(cfg.out, exist_ok=True)
        if os.path.exists(self.state_path) or os.path.exists(self.trials_path):
            if not resume:
                raise SearchError(f"{cfg.out} already holds a search: use --resume to continue it, or another --out")
            self._load()
        write_json(os.path.join(cfg.out, "search.json"), self._describe())

    def _describe(self) -> dict:
        d = asdict(self.cfg)
        d["ops"], d["combines"] = list(self.cfg.ops), list(self.cfg.combines)
        return d

    # -- persistence ------------------------------------------------------------------------
    def _save(self) -> None:
        state = {"strategy_name": self.cfg.strategy, "strategy": self.strategy.state_dict(),
                 "space": self.space.describe(), "pending": self.pending, "attempts": self.attempts,
                 "lost": self.lost, "told": sorted(self.told), "next_id": self.next_id}
        torch_save(state, self.state_path)

    def _load(self) -> None:
        try:
            state = torch.load(self.state_path, weights_only=False)
        except FileNotFoundError:
            raise SearchError(f"{self.cfg.out} has trials.jsonl but no state.pt: cannot resume") from None
        except Exception as e:
            raise SearchError(f"cannot read {self.state_path}: {type(e).__name__}: {e}") from None
        if state["strategy_name"] != self.cfg.strategy or state["space"] != self.space.describe():
            raise SearchError(f"{self.cfg.out} was searched with strategy {state['strategy_name']!r} in space "
                              f"{state['space']}; now {self.cfg.strategy!r} in {self.space.describe()}")
        self.strategy.load_state_dict(state["strategy"])
        self.pending, self.attempts, self.lost = state["pending"], state["attempts"], state["lost"]
        self.told, self.next_id = set(state["told"]), state["next_id"]
        # results logged after the last state save: the strategy learns them now
        for trial in read_trials(self.trials_path):
            if trial["final"] and trial["id"] not in self.told and trial["id"] in self.pending:
                self._learn(trial["id"], trial["reward"])
        self._save()

    def _append_trial(self, trial: dict) -> None:
        with open(self.trials_path, "a") as f:
            f.write(json.dumps(trial) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _learn(self, child_id: int, reward: float) -> None:
        self.strategy.tell(self.pending.pop(child_id), reward)
        self.told.add(child_id)

    # -- the loop -----------------------------------------------------------------------------
    def completed(self) -> List[dict]:
        return [t for t in read_trials(self.trials_path) if t["final"]]

    def _args(self, child_id: int) -> tuple:
        genotype = self.space.decode(self.pending[child_id]["decisions"], name=f"child_{child_id}")
        options = asdict(self.cfg.child) if self.cfg.evaluator != "synthetic" else {"seconds": self.cfg.synthetic_seconds}
        return (self.cfg.evaluator, genotype.to_dict(), options)

    def run(self) -> List[dict]:
        cfg = self.cfg
        done = self.completed()
        completed_ids = {t["id"] for t in done}
        queue = sorted(i for i in self.pending if i not in completed_ids)  # in flight at the last stop
        backend = (RayBackend(cfg.workers, cfg.ray_address, cfg.gpus_per_child) if cfg.backend == "ray"
                   else LocalBackend(cfg.workers))
        bar = None
        if cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.budget, initial=min(len(done), cfg.budget), desc=f"search ({cfg.strategy})",
                       unit="child", dynamic_ncols=True)
        best = max((t["reward"] for t in done if t["status"] == "ok"), default=float("nan"))
        running: Dict[int, float] = {}
        try:
            while len(done) < cfg.budget:
                while backend.running() < cfg.workers and len(done) + backend.running() < cfg.budget:
                    if queue:
                        child_id = queue.pop(0)
                    else:
                        child_id, self.next_id = self.next_id, self.next_id + 1
                        self.pending[child_id] = self.strategy.ask()
                        self._save()
                    running[child_id] = time.time()
                    backend.submit(child_id, self._args(child_id))
                for child_id, kind, payload in backend.wait():
                    seconds = time.time() - running.pop(child_id)
                    genotype = self._args(child_id)[1]
                    if kind == "lost":
                        self.lost[child_id] = self.lost.get(child_id, 0) + 1
                        logger.warning("child %d: %s (re-queued)", child_id, payload)
                        if self.lost[child_id] < MAX_LOST:
                            queue.append(child_id)
                            self._save()
                            continue
                        kind, payload = "error", f"its worker died {MAX_LOST} times: {payload}"
                    if kind == "ok":
                        trial = {"id": child_id, "genotype": genotype, "status": "ok", "reward": payload["reward"],
                                 "seconds": payload.get("seconds", seconds), "attempt": self.attempts.get(child_id, 0) + 1,
                                 "final": True, "error": None, "params": payload.get("params"), "finished": time.time()}
                    else:
                        self.attempts[child_id] = self.attempts.get(child_id, 0) + 1
                        final = self.attempts[child_id] > cfg.retries
                        trial = {"id": child_id, "genotype": genotype, "status": "failed",
                                 "reward": cfg.failure_reward if final else None, "seconds": seconds,
                                 "attempt": self.attempts[child_id], "final": final, "error": str(payload),
                                 "finished": time.time()}
                        logger.warning("child %d attempt %d failed: %s%s", child_id, self.attempts[child_id], payload,
                                       "" if final else " (retrying)")
                        if not final:
                            queue.append(child_id)
                    self._append_trial(trial)
                    if trial["final"]:
                        self._learn(child_id, trial["reward"])
                        done.append(trial)
                        if trial["status"] == "ok" and not trial["reward"] <= best:
                            best = trial["reward"]
                            self.write_best(done)
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix(best=f"{best:.4f}", failed=sum(t["status"] != "ok" for t in done))
                    self._save()
        finally:
            backend.close()
            if bar is not None:
                bar.close()
        self.write_outputs(done)
        return done

    # -- outputs --------------------------------------------------------------------------------
    def write_best(self, done: List[dict]) -> Optional[G.Genotype]:
        ok = [t for t in done if t["status"] == "ok"]
        if not ok:
            return None
        top = max(ok, key=lambda t: t["reward"])
        genotype = G.Genotype.from_dict(top["genotype"]).replace(
            name=f"searched_{self.cfg.strategy}_{top['id']}",
            source=f"nasnet_det search ({self.cfg.strategy}, {self.cfg.evaluator}) in {self.cfg.out}, reward {top['reward']:.4f}")
        genotype.to_json(os.path.join(self.cfg.out, "genotype.json"))
        return genotype

    def write_outputs(self, done: List[dict]) -> None:
        if self.write_best(done) is None:
            raise SearchError(f"every child failed ({len(done)}): see the errors in {self.trials_path}")
        write_report(self.cfg, done, os.path.join(self.cfg.out, "report.md"))
        plot_search_curve({self.cfg.strategy: [t["reward"] for t in done]}, os.path.join(self.cfg.out, "search_curve.png"))


def write_report(cfg: SearchConfig, done: List[dict], path: str) -> None:
    ok = sorted((t for t in done if t["status"] == "ok"), key=lambda t: -t["reward"])
    lines = [f"# Search report: {cfg.strategy}", "",
             f"- children: {len(done)} completed, {len(done) - len(ok)} failed (reward {cfg.failure_reward})",
             f"- evaluator: {cfg.evaluator}; backend: {cfg.backend} with {cfg.workers} workers",
             "- best genotype: `genotype.json` (use as MODEL.NASNET.GENOTYPE)", "",
             f"## Top {min(cfg.top_k, len(ok))}", "",
             "| rank | child | reward | params | seconds | normal cell ops | reduction cell ops |",
             "|---|---|---|---|---|---|---|"]
    for rank, t in enumerate(ok[: cfg.top_k], 1):
        g = G.Genotype.from_dict(t["genotype"])
        ops = lambda cell: ", ".join(f"{b.ops[0]}({b.inputs[0]})+{b.ops[1]}({b.inputs[1]})" for b in cell.blocks)
        lines.append(f"| {rank} | {t['id']} | {t['reward']:.4f} | {t.get('params') or '-'} | {t['seconds']:.1f} | "
                     f"{ops(g.normal)} | {ops(g.reduction)} |")
    write_text(path, "\n".join(lines) + "\n")


def plot_search_curve(rewards_by_strategy: Dict[str, List[float]], path: str) -> None:
    """Reward of each child and the running best, per strategy, in completion order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for i, (name, rewards) in enumerate(rewards_by_strategy.items()):
        color = f"C{i}"
        running, best = [], float("-inf")
        for r in rewards:
            best = max(best, r)
            running.append(best)
        ax.scatter(range(1, len(rewards) + 1), rewards, s=10, alpha=0.5, color=color, label=f"{name}: child reward")
        ax.plot(range(1, len(rewards) + 1), running, color=color, label=f"{name}: running best")
    ax.set_xlabel("children completed")
    ax.set_ylabel("reward (validation accuracy)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def run_search(cfg: SearchConfig, resume: bool = False) -> List[dict]:
    return SearchRunner(cfg, resume).run()
