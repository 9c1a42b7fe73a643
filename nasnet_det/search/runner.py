"""The search loop: the strategy proposes children, a backend (:mod:`.backends`: local processes or
Ray) scores them, the trial log (:mod:`.trials`) keeps every attempt, and :mod:`.report` writes
what a reader looks at. This module holds the loop; the configuration is :mod:`.config`, the evaluators :mod:`.evaluators`.

Everything needed to continue is in the run folder, written atomically:
- ``trials.jsonl``: one JSON object per finished attempt. An attempt is finished when its child
  returned a reward or raised. Fields: ``id``, ``genotype``, ``status`` ("ok" / "failed"),
  ``reward``, ``seconds``, ``attempt``, ``final``, ``error``. Lines are appended with fsync, and a
  torn last line is cut off on resume (:mod:`.trials`).
- ``state.pt``: the strategy state, the proposals in flight, attempt counts, and which results
  the strategy has already learned from. It is rewritten after every ask and every result.
- ``search.json``: the configuration. ``--resume`` refuses other settings than these (only the
  budget and how the work is run may change: :data:`RESUMABLE`), naming each difference.

``--resume`` re-submits the children in flight and replays results the strategy had not yet
learned from, so the run ends with exactly ``budget`` completed children.

Failures:
- A child that raises (NaN loss, out of memory, a bug) is recorded as a failed attempt and
  retried ``retries`` times; then it gets ``failure_reward``.
- A worker process or Ray node that dies mid-child gets the child re-queued; that is not counted
  as an attempt.
- Local workers end themselves within a second of their parent's death (``kill -9`` of the
  search), so nothing keeps training for a run that is gone.
"""
from __future__ import annotations

import inspect
import json
import logging
import os
import time
from typing import Dict, List, Optional

import torch

from .. import genotypes
from ..data import check_spec
from ..errors import PluginError, SearchError
from ..io import FolderLock, load_refusal, tensorboard_writer, torch_save, write_json
from .backends import build_backend
from .config import (BACKENDS, RESUMABLE, TASKS, OneShotConfig, SearchConfig,  # noqa: F401  (the API)
                     config_differences)
from .evaluators import resolve_evaluator
from .journal import open_journal
from .space import SearchSpace
from .tasks import load_task
from .strategies import STRATEGIES, build_strategy, strategy_class  # noqa: F401  (STRATEGIES: the API)
from .report import plot_search_curve, write_report
from .trials import TrialLog, check_record

logger = logging.getLogger("nasnet_det.search")

MAX_LOST = 3  # a child whose worker died this often is treated as failing, not re-queued forever


# ------------------------------------------------------------------------------------------------

class SearchRunner:
    """One search in one folder: asks the strategy for children until ``budget`` are final, keeps
    ``state.pt`` and ``trials.jsonl`` current after every event, and resumes from them."""

    def __init__(self, cfg: SearchConfig, resume: bool = False):
        self.cfg = cfg
        self.space = SearchSpace(cfg.num_blocks, cfg.ops, cfg.combines)
        self.strategy = _build_strategy(cfg, self.space)
        resolve_evaluator(cfg.evaluator)  # fail now, not inside a worker
        if cfg.evaluator == "method" and cfg.task == "classification":
            check_spec(cfg.child.dataset)
        self.trials_path = os.path.join(cfg.out, "trials.jsonl")
        self.log = TrialLog(self.trials_path, check_record)
        self.state_path = os.path.join(cfg.out, "state.pt")
        self.config_path = os.path.join(cfg.out, "search.json")
        self.pending: Dict[int, dict] = {}  # asked, not completed: id -> proposal
        self.attempts: Dict[int, int] = {}  # failed attempts so far
        self.lost: Dict[int, int] = {}
        self.told: set = set()
        self.results: Dict[int, float] = {}  # final rewards the strategy has not been told yet
        self.next_id = 0
        self._genotypes: Dict[int, dict] = {}
        if os.path.exists(cfg.out) and not os.path.isdir(cfg.out):
            raise SearchError(f"--out {cfg.out} is a file, not a folder")
        # a one-shot search killed in its warm-up has only supernet.pt (saved every epoch) so far
        self.supernet_path = os.path.join(cfg.out, "supernet.pt")
        started = os.path.exists(self.state_path) or self.log.exists() or os.path.exists(self.supernet_path)
        if started and not resume:
            raise SearchError(f"{cfg.out} already holds a search: use --resume to continue it, or another --out")
        if resume and not started:
            raise SearchError(f"nothing to resume: {cfg.out} holds no search (no trials.jsonl or state.pt); "
                              "run without --resume to start one")
        os.makedirs(cfg.out, exist_ok=True)
        self.lock = FolderLock(cfg.out, "search").acquire(SearchError)  # one writer per run folder
        try:
            if resume:
                self._check_same_settings()
                self._load()
            write_json(self.config_path, cfg.to_dict())
            # optuna-dashboard's view of the search (journal.py), rebuilt from trials.jsonl where behind
            self.journal = open_journal(cfg.out, self.space, cfg.to_dict(), cfg.latency_target is not None)
            if self.journal is not None:
                self.journal.sync(self.log.final() if self.log.exists() else [])
            self.latency = None
            if cfg.latency_target is not None:
                from .latency import LatencyReward

                self.latency = LatencyReward(cfg, cfg.out)
                self.latency.check_target()  # a target no cell meets is one line now, not after the budget
        except BaseException:
            self.lock.release()
            raise

    def _check_same_settings(self) -> None:
        try:
            with open(self.config_path) as f:
                stored = json.load(f)
        except FileNotFoundError:  # written before anything else: a run folder without it was edited
            raise SearchError(f"{self.cfg.out} holds a search but no search.json (the settings it ran with): "
                              "without them a resume could mix rewards of other settings; restore the file, or "
                              "search into another --out") from None
        except (OSError, ValueError) as e:
            raise SearchError(f"cannot read {self.config_path}: {e}") from None
        try:  # settings added since the run started take their defaults
            stored = SearchConfig.from_dict(stored).to_dict()
        except (TypeError, KeyError, SearchError):
            pass
        diffs = config_differences(stored, self.cfg.to_dict())
        if diffs:
            raise SearchError(f"cannot resume {self.cfg.out} with other settings (stored -> now): {'; '.join(diffs)}. "
                              "Rewards of two settings cannot be ranked together: resume with the stored "
                              "settings, or search into another --out")

    # -- persistence ------------------------------------------------------------------------
    def _save(self) -> None:
        state = {"strategy_name": self.cfg.strategy, "strategy": self.strategy.state_dict(),
                 "space": self.space.describe(), "pending": self.pending, "attempts": self.attempts,
                 "lost": self.lost, "told": sorted(self.told), "next_id": self.next_id}
        torch_save(state, self.state_path)

    def _load(self) -> None:
        try:
            # weights_only: a run folder handed to us loads tensors and plain data, never runs code
            state = torch.load(self.state_path, weights_only=True)
        except FileNotFoundError:
            if not self.log.exists():
                return  # killed in the supernet's warm-up: nothing asked yet; the supernet resumes itself
            raise SearchError(f"{self.cfg.out} has trials.jsonl but no state.pt: cannot resume") from None
        except Exception as e:
            raise SearchError(f"cannot read {self.state_path} (tensors and plain data only): "
                              f"{load_refusal(e)}") from None
        if state["strategy_name"] != self.cfg.strategy or state["space"] != self.space.describe():
            raise SearchError(f"{self.cfg.out} was searched with strategy {state['strategy_name']!r} in space "
                              f"{state['space']}; now {self.cfg.strategy!r} in {self.space.describe()}")
        self.strategy.load_state_dict(state["strategy"])
        self.pending, self.attempts, self.lost = state["pending"], state["attempts"], state["lost"]
        self.told, self.next_id = set(state["told"]), state["next_id"]
        self.log.repair()  # before any append: a torn line would swallow the next record
        # results logged but not yet told (logged after the last save, or waiting for an earlier child)
        for trial in self.log.read():
            if trial.get("final") and trial["id"] not in self.told and trial["id"] in self.pending:
                self.results[trial["id"]] = trial["reward"]
        self._save()

    def _told_prefix(self) -> int:
        n = 0
        while n in self.told:
            n += 1
        return n

    def _tell_up_to(self, count: int) -> bool:
        """Tell the strategy the results of children ``0 .. count-1`` in proposal order; False if one
        of them has not finished yet.

        A seeded search thus gives the same children whatever the timing: child ``k`` is proposed
        after exactly the results of children ``0 .. k - workers`` were told, in that order (a free
        worker waits for a slow earlier child rather than let the finishing order steer the
        strategy). Changing ``--workers`` on ``--resume`` changes that lag from then on."""
        n = self._told_prefix()
        while n < count:
            if n not in self.results:
                return False
            self.strategy.tell(self.pending.pop(n), self.results.pop(n))
            self.told.add(n)
            n += 1
        return True

    # -- the loop -----------------------------------------------------------------------------
    def completed(self) -> List[dict]:
        return self.log.final()

    def _genotype(self, child_id: int) -> dict:
        """The child's genotype (decoded once per child: submits, retries and its records share it)."""
        if child_id not in self._genotypes:
            decoded = self.space.decode(self.pending[child_id]["decisions"], name=f"child_{child_id}")
            self._genotypes[child_id] = decoded.to_dict()
        return self._genotypes[child_id]

    def _record(self, child_id: int, kind: str, payload, seconds: float) -> dict:
        """The trial record of one finished attempt; counts failed attempts."""
        record = {"id": child_id, "genotype": self._genotype(child_id), "seconds": seconds, "finished": time.time()}
        if kind == "ok" and self.latency is not None:  # MnasNet's reward: accuracy and predicted latency
            info = self.latency.info(record["genotype"])
            payload = {**payload, "accuracy": payload["reward"], **info,
                       "reward": self.latency.reward(payload["reward"], info["latency_ms"])}
        if kind == "ok":
            return {**record, "status": "ok", "reward": payload["reward"], "seconds": payload.get("seconds", seconds),
                    "attempt": self.attempts.get(child_id, 0) + 1, "final": True, "error": None,
                    "params": payload.get("params"),
                    **({"metrics": extra} if (extra := {k: v for k, v in payload.items()
                                                         if k not in ("reward", "seconds", "params")}) else {})}
        self.attempts[child_id] = self.attempts.get(child_id, 0) + 1
        final = self.attempts[child_id] > self.cfg.retries
        logger.warning("child %d attempt %d failed: %s%s", child_id, self.attempts[child_id], payload,
                       "" if final else " (retrying)")
        return {**record, "status": "failed", "reward": self.cfg.failure_reward if final else None,
                "attempt": self.attempts[child_id], "final": final, "error": str(payload)}

    def run(self) -> List[dict]:
        try:
            return self._run()
        finally:
            self.lock.release()

    def _run(self) -> List[dict]:
        cfg = self.cfg
        done = self.completed()
        completed_ids = {t["id"] for t in done}
        queue = sorted(i for i in self.pending if i not in completed_ids)  # in flight at the last stop
        # one-shot: the supernet trains in this process between rounds of children (none running)
        supernet = build_supernet_trainer(cfg, self.space) if cfg.method == "oneshot" and cfg.evaluator == "method" else None
        backend = build_backend(cfg.backend, cfg.workers, cfg.ray_address, cfg.gpus_per_child)
        bar = None
        if cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.budget, initial=min(len(done), cfg.budget), desc=f"search ({cfg.strategy})",
                       unit="child", dynamic_ncols=True)
        best = max((t["reward"] for t in done if t["status"] == "ok"), default=float("nan"))
        running: Dict[int, float] = {}
        settings = cfg.to_dict()  # what every evaluator receives beside the genotype
        board = tensorboard_writer(cfg.out)  # TensorBoard scalars beside the run's files
        if supernet is not None:
            supernet.board = board
        try:
            while len(done) < cfg.budget:
                if supernet is not None and backend.running() == 0 and supernet.due(len(done)):
                    supernet.train_round(self.strategy.sample)
                while backend.running() < cfg.workers and len(done) + backend.running() < cfg.budget:
                    if supernet is not None and supernet.due(len(done) + backend.running()):
                        break  # the next child waits for the next supernet round
                    if queue:
                        child_id = queue.pop(0)
                    else:
                        if not self._tell_up_to(self.next_id - cfg.workers + 1):
                            break  # the proposal waits for an earlier child's result (see _tell_up_to)
                        child_id, self.next_id = self.next_id, self.next_id + 1
                        self.pending[child_id] = self.strategy.ask()
                        self._save()
                    running[child_id] = time.time()
                    backend.submit(child_id, (cfg.evaluator, self._genotype(child_id), settings))
                if backend.running() == 0:
                    continue
                for child_id, kind, payload in backend.wait():
                    seconds = time.time() - running.pop(child_id)
                    if kind == "fatal":  # the child stays in flight: --resume with the plug-in scores it
                        raise PluginError(payload)
                    if kind == "lost":
                        self.lost[child_id] = self.lost.get(child_id, 0) + 1
                        logger.warning("child %d: %s (re-queued)", child_id, payload)
                        if self.lost[child_id] < MAX_LOST:
                            queue.append(child_id)
                            self._save()
                            continue
                        kind, payload = "error", f"its worker died {MAX_LOST} times: {payload}"
                    trial = self._record(child_id, kind, payload, seconds)
                    if not trial["final"]:
                        queue.append(child_id)
                    self.log.append(trial)
                    if trial["final"]:
                        self.results[child_id] = trial["reward"]
                        done.append(trial)
                        self._journal(trial)
                        if trial["status"] == "ok" and not trial["reward"] <= best:
                            best = trial["reward"]
                            self.write_best(done)
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix(best=f"{best:.4f}", failed=sum(t["status"] != "ok" for t in done))
                        if board is not None:
                            board.add_scalar("search/reward", trial["reward"], len(done))
                            board.add_scalar("search/best_reward", best, len(done))
                            board.add_scalar("search/failed", sum(t["status"] != "ok" for t in done), len(done))
                    self._save()
            self._tell_up_to(self.next_id)  # the final strategy state has learned every child
            self._save()
        finally:
            if supernet is not None:
                supernet.close()
            if board is not None:
                board.close()
            backend.close()
            if bar is not None:
                bar.close()
        self.write_outputs(done)
        return done

    def _journal(self, trial: dict) -> None:
        if self.journal is None:
            return
        try:
            self.journal.add(trial)
        except OSError as e:  # the dashboard's copy; trials.jsonl (written first) keeps the search going
            logger.warning("optuna.journal: %s; the search goes on without it (rebuilt on --resume)", e)
            self.journal = None

    # -- outputs --------------------------------------------------------------------------------
    def write_best(self, done: List[dict]) -> Optional[genotypes.Genotype]:
        ok = [t for t in done if t["status"] == "ok"]
        if not ok:
            return None
        if self.cfg.latency_target is not None:  # the best cell under the target, where one is
            ok = [t for t in ok if t["metrics"]["latency_ms"] <= self.cfg.latency_target] or ok
        top = max(ok, key=lambda t: t["reward"])
        genotype = genotypes.Genotype.from_dict(top["genotype"]).replace(
            name=f"searched_{self.cfg.strategy}_{top['id']}",
            source=f"nasnet_det search ({self.cfg.strategy}, {self.cfg.evaluator}) in {self.cfg.out}, reward {top['reward']:.4f}")
        genotype.to_json(os.path.join(self.cfg.out, "genotype.json"))
        return genotype

    def write_outputs(self, done: List[dict]) -> None:
        if self.write_best(done) is None:
            raise SearchError(f"every child failed ({len(done)}): see the errors in {self.trials_path}")
        history = []
        if self.cfg.method == "oneshot" and os.path.exists(self.supernet_path):
            from .oneshot import read_supernet

            history = read_supernet(self.supernet_path).get("history", [])
        write_report(self.cfg, done, os.path.join(self.cfg.out, "report.md"), history)
        if self.latency is not None:
            from .latency import predict
            from .report import plot_latency_front

            plot_latency_front(self.cfg, done, predict(self.latency.table, "nasnet_a", self.cfg.latency_arch),
                               os.path.join(self.cfg.out, "accuracy_latency.png"))
        plot_search_curve({self.cfg.strategy: [t["reward"] for t in done]}, os.path.join(self.cfg.out, "search_curve.png"))


def _build_strategy(cfg: SearchConfig, space: SearchSpace):
    try:
        return build_strategy(cfg.strategy, space, seed=cfg.seed, **cfg.strategy_options)
    except TypeError as e:
        if "unexpected keyword" not in str(e):
            raise
        options = [n for n in inspect.signature(strategy_class(cfg.strategy)).parameters if n not in ("space", "seed")]
        raise SearchError(f"strategy {cfg.strategy!r} has no option among {sorted(cfg.strategy_options)}; "
                          f"its options: {', '.join(options)}") from None


def build_supernet_trainer(cfg: SearchConfig, space: SearchSpace):
    """The supernet of a one-shot search, for its task (loads ``supernet.pt`` where there is one)."""
    return load_task(cfg.task).SUPERNET(cfg, space, progress=cfg.progress)


def run_search(cfg: SearchConfig, resume: bool = False) -> List[dict]:
    """The search; with ``cfg.promote``, successive halving over its rungs (:mod:`.promote`)."""
    if cfg.promote:
        from .promote import run_promoted

        return run_promoted(cfg, resume, SearchRunner)
    return SearchRunner(cfg, resume).run()
