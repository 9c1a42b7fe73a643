"""The one-shot search's tasks: a table of task name -> module, loaded where the task runs.

The search itself knows no task. A task module provides, as module attributes:

- ``SUPERNET``: the :class:`~nasnet_det.search.oneshot.SupernetTrainer` subclass that trains the
  supernet on the task (its ``build``, ``batches`` and ``loss``);
- ``evaluate(genotype_dict, settings) -> {"reward": float, ...}``: a child's reward with the
  supernet's weights (run in the search's workers);
- ``CHILD_DEFAULTS``: the child settings the task uses where the command line is silent;
- ``METRICS``: the values ``--oneshot-metric`` may name (empty: the task has one reward);
- ``check(cfg)``: raise :class:`~nasnet_det.errors.SearchError` for settings the task cannot run.

The table is data (module paths, imported with :mod:`importlib` on use), so spawned workers and
Ray tasks find a task the same way the driver does, and the search imports no task's
dependencies (Detectron2 for detection) unless that task runs. A new task (a segmentation reward,
say) is one line here plus one module.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import SearchError

TASKS = {
    "classification": "nasnet_det.search.oneshot",
    "detection": "nasnet_det.detection.oneshot",
}


def load_task(name: str) -> ModuleType:
    if name not in TASKS:
        raise SearchError(f"unknown task {name!r}; use one of {', '.join(TASKS)}")
    return importlib.import_module(TASKS[name])
