"""Every search's trials in an optuna storage, for ``optuna-dashboard`` (a browser view of a search).

``OUT/optuna.journal`` is optuna's ``JournalStorage`` file (append-only JSON lines; a line cut by
``kill -9`` is cut off again on ``--resume``) holding one study, ``search``. Each final child
becomes one trial, whatever the strategy: its decisions as categorical parameters (named as
``normal.b0.input0``, with the choices' values: ops by name), its reward as the value, or with a
latency target the accuracy and the predicted latency as two objectives (the dashboard then draws
the accuracy/latency front). User attributes: the child's id, reward, accuracy, latency, seconds,
attempt and error; a failed child is a FAIL trial. ``trials.jsonl`` stays the search's record: the
journal is rebuilt from it (missing trials added) when a search starts or resumes.

Watch a search while it runs::

    pip install optuna-dashboard
    optuna-dashboard runs/search/optuna.journal      # then open http://127.0.0.1:8080

Where optuna is not installed (it comes with ``nasnet_det[search]`` and ``make install``), the
search runs without a journal and says so once.
"""
from __future__ import annotations

import logging
import os
import warnings
from typing import Iterable, Optional

from .. import genotypes
from .space import SearchSpace
from .trials import TrialLog

logger = logging.getLogger("nasnet_det.search")

FILENAME = "optuna.journal"
STUDY = "search"


class TrialJournal:
    def __init__(self, out: str, space: SearchSpace, settings: dict, objectives: Iterable[str] = ("reward",)):
        import optuna
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna, self.space = optuna, space
        self.path = os.path.join(out, FILENAME)
        TrialLog(self.path).repair()  # a line torn by kill -9: cut, so the next append starts a line of its own
        for stale in (self.path + ".lock", self.path + ".lock.tmp"):  # the run folder's own lock guards it
            if os.path.lexists(stale):
                os.remove(stale)
        storage = JournalStorage(JournalFileBackend(self.path))
        self.objectives = list(objectives)
        directions = ["minimize" if o == "latency_ms" else "maximize" for o in self.objectives]
        self.study = optuna.create_study(storage=storage, study_name=STUDY, directions=directions, load_if_exists=True)
        if not self.study.user_attrs:
            for key in ("strategy", "method", "task", "evaluator", "budget", "seed"):
                self.study.set_user_attr(key, settings.get(key))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # set_metric_names is "experimental" in optuna
                self.study.set_metric_names(self.objectives)
        self.names = space.names
        self.distributions = {n: optuna.distributions.CategoricalDistribution(list(d.choices))
                              for n, d in zip(self.names, space.decisions)}
        self.recorded = {t.user_attrs.get("id") for t in self.study.get_trials(deepcopy=False)}

    def add(self, record: dict) -> None:
        if record["id"] in self.recorded:
            return
        decisions = self.space.encode(genotypes.Genotype.from_dict(record["genotype"]))
        params = {n: d.choices[i] for n, d, i in zip(self.names, self.space.decisions, decisions)}
        metrics = record.get("metrics", {})
        attrs = {"id": record["id"], "reward": record["reward"], "seconds": record["seconds"],
                 "attempt": record["attempt"], "params_count": record.get("params"), "error": record.get("error"),
                 **{k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and k != "id"}}
        ok = record["status"] == "ok"
        values = None
        if ok:
            row = {"reward": record["reward"], **metrics}
            values = [float(row[o]) for o in self.objectives]
        state = self.optuna.trial.TrialState.COMPLETE if ok else self.optuna.trial.TrialState.FAIL
        self.study.add_trial(self.optuna.trial.create_trial(
            state=state, values=values, params=params, distributions=self.distributions, user_attrs=attrs))
        self.recorded.add(record["id"])

    def sync(self, records: Iterable[dict]) -> None:
        for record in sorted(records, key=lambda r: r["id"]):
            self.add(record)


def open_journal(out: str, space: SearchSpace, settings: dict, latency: bool) -> Optional[TrialJournal]:
    """The run folder's journal, or None (with one warning) where optuna is not installed."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        logger.warning("optuna is not installed: no optuna.journal for optuna-dashboard "
                       "(pip install 'nasnet_det[search]')")
        return None
    return TrialJournal(out, space, settings, ("accuracy", "latency_ms") if latency else ("reward",))
