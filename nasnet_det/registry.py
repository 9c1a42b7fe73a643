"""One table per kind of plug-in: name -> object, as Detectron2's ``Registry``.

Every way of extending the package is an entry of a :class:`Registry`: ops, strategies, ranking
methods, one-shot tasks, latency network kinds, dataset forms, commands and benchmark sections.
An entry is added in one of two ways:

- ``@REGISTRY.register("name")`` above a class or function (or ``REGISTRY.register("name", obj)``),
  at the bottom of the module that defines it, as timm's ``@register_model``;
- ``REGISTRY.register_lazy("name", "module.path:attr")`` (or ``"module.path"``: the module), imported on first use, so a table on a
  low floor can name what a higher floor defines (Detectron2's detection task, a command) without
  importing it, and a worker process finds it the same way the driver does.

An unknown name is one line that lists the names and points at ``--plugin MODULE`` (a user's
module that registers more: :mod:`nasnet_det.plugins`); ``names()`` feeds ``argparse`` choices and
``--help``. Pure Python: this module imports nothing of the package but its errors.
"""
from __future__ import annotations

import importlib
from typing import Any, Dict, Iterator, List, Type

from .errors import UserError


class _Lazy:
    __slots__ = ("target",)

    def __init__(self, target: str):
        module, sep, attr = target.partition(":")
        if not module or (sep and not attr):
            raise ValueError(f"a lazy entry is 'module.path:attr' or 'module.path', got {target!r}")
        self.target = target

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        obj = importlib.import_module(module)
        for part in attr.split(".") if attr else ():  # an attribute, or a key of a table ("ops:BUILTIN_OPS.conv_3x3")
            obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
        return obj


class Registry:
    """name -> object for one kind of plug-in (``kind``: "strategy", "op", ...).

    ``error`` is the :class:`~nasnet_det.errors.UserError` kind an unknown name raises; ``hidden``
    entries (run by the package itself) are found by :meth:`get` but left out of :meth:`names`.
    """

    def __init__(self, kind: str, error: Type[UserError] = UserError):
        self.kind = kind
        self.error = error
        self._entries: Dict[str, Any] = {}
        self._help: Dict[str, str] = {}
        self._hidden: set = set()

    # -- adding ---------------------------------------------------------------------------------
    def register(self, name: str, obj: Any = None, *, help: str = "", hidden: bool = False,
                 override: bool = False) -> Any:
        """Add ``obj`` under ``name``; without ``obj``, a decorator. A name that is taken by another
        object is refused unless ``override`` (registering the same object again is harmless: a
        module imported twice, or in a worker after the driver)."""
        if obj is None:
            return lambda o: self.register(name, o, help=help, hidden=hidden, override=override)
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        old = self._entries.get(name)
        if old is not None and old is not obj and not override and not self._same_lazy(old, obj):
            raise ValueError(f"{self.kind} {name!r} is registered already ({self._describe(old)}); "
                             "pick another name, or pass override=True to replace it")
        self._entries[name] = obj
        if help or name not in self._help:
            self._help[name] = help or self._help.get(name, "")
        (self._hidden.add if hidden else self._hidden.discard)(name)
        return obj

    def register_lazy(self, name: str, target: str, *, help: str = "", hidden: bool = False) -> None:
        """Add ``"module.path:attr"``, imported when the name is first used."""
        self.register(name, _Lazy(target), help=help, hidden=hidden)

    @staticmethod
    def _same_lazy(old, new) -> bool:
        if isinstance(old, _Lazy) and isinstance(new, _Lazy):
            return old.target == new.target
        if isinstance(old, _Lazy):  # the loaded object of a lazy entry registers itself on import
            module, _, attr = old.target.partition(":")
            if not attr:
                return getattr(new, "__name__", None) == module
            return getattr(new, "__module__", None) == module and getattr(new, "__qualname__", None) == attr
        return False

    @staticmethod
    def _describe(obj) -> str:
        if isinstance(obj, _Lazy):
            return obj.target
        return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__name__)}"

    def remove(self, name: str) -> Any:
        """Take ``name`` out (a test's clean-up); returns what was registered."""
        self._help.pop(name, None)
        self._hidden.discard(name)
        return self._entries.pop(name)

    # -- reading --------------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        """The object under ``name`` (a lazy entry is imported now); an unknown name is one line."""
        if name not in self._entries:
            raise self.error(self.unknown(name))
        obj = self._entries[name]
        if isinstance(obj, _Lazy):
            obj = obj.load()
            self._entries[name] = obj
        return obj

    def unknown(self, name: Any) -> str:
        """The one line for a name that is not here."""
        return (f"unknown {self.kind} {name!r}; use one of {', '.join(self.names())} "
                f"(or --plugin MODULE, a module that registers it)")

    def check(self, name: str) -> str:
        """``name`` if it is registered (nothing is imported), else the one-line error."""
        if name not in self._entries:
            raise self.error(self.unknown(name))
        return name

    def names(self, hidden: bool = False) -> List[str]:
        """The names in registration order (what ``--help`` and argparse ``choices`` show)."""
        return [n for n in self._entries if hidden or n not in self._hidden]

    def help(self, name: str) -> str:
        return self._help.get(name, "")

    def items(self) -> Iterator:
        """(name, object) for every name, lazy entries imported."""
        return ((n, self.get(n)) for n in list(self._entries))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


__all__ = ["Registry"]
