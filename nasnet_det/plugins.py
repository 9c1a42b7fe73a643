"""Plug-ins: a user's module that registers things (an op with ``register_op``, a proxy with
``@proxy``, a strategy in ``STRATEGIES``, ...) when it is imported, named with ``--plugin MODULE``.

Every command takes ``--plugin MODULE`` (repeatable) and imports it before it builds its options,
so the plug-in's names are choices like the package's own. A search stores its plug-ins in
``search.json`` (``SearchConfig.plugins``); each local worker and each Ray task imports them before
its first child, and ``--resume`` asks for them again on the command line (a run folder handed to
us never names code that runs without the user saying so). A module that fails to import is one
line.
"""
from __future__ import annotations

import importlib
import sys
from typing import Iterable, List, Sequence

from .errors import PluginError

LOADED: List[str] = []  # imported in this process, in order


def load(modules: Iterable[str]) -> None:
    """Import each module (once per process)."""
    for module in modules:
        if module in LOADED:
            continue
        if not module or any(not part.isidentifier() for part in module.split(".")):
            raise PluginError(f"--plugin {module!r}: expected a module name (e.g. my_ops or mypackage.nas_ops)")
        if "" not in sys.path and "." not in sys.path:  # python -m / console scripts: the current folder too
            sys.path.append("")
        try:
            importlib.import_module(module)
        except Exception as e:  # the plug-in's own failure, whatever it is: one line
            raise PluginError(f"--plugin {module}: cannot import it ({type(e).__name__}: "
                              f"{' '.join(str(e).split())[:300]}); put it on PYTHONPATH or in the current folder, "
                              "or fix it") from None
        LOADED.append(module)


def from_argv(argv: Sequence[str]) -> List[str]:
    """The modules named by ``--plugin MODULE`` / ``--plugin=MODULE`` in a command line."""
    found = []
    for i, arg in enumerate(argv):
        if arg == "--plugin" and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith("--plugin="):
            found.append(arg.split("=", 1)[1])
    return found
