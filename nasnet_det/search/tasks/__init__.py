"""The one-shot search's tasks: a table of task name -> module, loaded where the task runs.

The search itself knows no task. A task module provides, as module attributes:

- ``SUPERNET``: the :class:`~nasnet_det.search.oneshot.SupernetTrainer` subclass that trains the
  supernet on the task (its ``build``, ``batches`` and ``loss``);
- ``evaluate(genotype_dict, settings) -> {"reward": float, ...}``: a child's reward with the
  supernet's weights (run in the search's workers);
- ``CHILD_DEFAULTS``: the child settings the task uses where the command line is silent;
- ``METRICS``: the values ``--oneshot-metric`` may name (empty: the task has one reward);
- ``check(cfg)``: raise :class:`~nasnet_det.errors.SearchError` for settings the task cannot run.

The table is a :class:`~nasnet_det.registry.Registry` of lazy module entries (imported on use),
so spawned workers and Ray tasks find a task the same way the driver does, and the search imports no
task's dependencies (Detectron2 for detection) unless that task runs. A new task (a segmentation
reward, say) is one module and one ``TASKS.register_lazy(name, "its.module")``, in a module given
to ``--plugin`` where it lives outside the package.
"""
from __future__ import annotations

from types import ModuleType

from ...errors import SearchError
from ...registry import Registry

TASKS = Registry("task", SearchError)
TASKS.register_lazy("classification", "nasnet_det.search.tasks.classification", help="the supernet as a classifier")
TASKS.register_lazy("detection", "nasnet_det.detection.oneshot", help="the supernet inside Faster R-CNN")


def load_task(name: str) -> ModuleType:
    return TASKS.get(name)
