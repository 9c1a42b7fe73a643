"""What every command-line tool shares: one-line errors and non-zero exits for bad input."""
from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from typing import Callable, Iterable, Optional, Sequence

from . import plugins
from .errors import UserError, one_line


def quiet_known_noise() -> None:
    """Silence the third-party notes every command would print before its own line (these only, not
    warnings in general): torch's deprecation of ``torch.jit.script``/``trace`` (Detectron2 scripts
    a few functions on import), torch.fx's ``is_fx_tracing`` note (Detectron2's ``ROIPooler``),
    torch's ``meshgrid`` indexing note (Detectron2's anchors) and ``torch.utils.cpp_extension``'s
    "No CUDA runtime is found" (a CUDA build of torch without a GPU, when Detectron2 imports it)."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
    # Detectron2's anchor generator calls torch.meshgrid without indexing= (its 'ij' default is what it means)
    warnings.filterwarnings("ignore", message=r"torch\.meshgrid: in an upcoming release", category=UserWarning)
    logging.getLogger("torch.fx._symbolic_trace").addFilter(
        lambda record: not str(record.msg).startswith("is_fx_tracing will return true"))
    logging.getLogger("torch.utils.cpp_extension").addFilter(
        lambda record: not str(record.msg).startswith("No CUDA runtime is found"))


quiet_known_noise()  # the tools import this module before Detectron2


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (``error: ...``) and exit status 2, like any user error."""

    def __init__(self, *args, plugins: bool = True, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        if plugins:  # imported by run() before the options are built (nasnet_det.plugins)
            add_plugin_option(self)

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        global _HAS_RESUME  # what run() tells a stopped user: --resume only where the command has it
        _HAS_RESUME = "--resume" in self._option_string_actions
        return super().parse_known_args(args, namespace)


_HAS_RESUME = True  # the last parsed command has --resume (commands parsed elsewhere: assume so)


def add_plugin_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first: its registered ops, proxies, strategies, ... become choices "
                             "(repeatable; a search's workers import it too)")
    return parser


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give a parser built elsewhere (e.g. Detectron2's ``default_argument_parser``) one-line errors."""
    parser.error = lambda message: parser.exit(2, f"error: {message} (see {parser.prog} --help)\n")
    return add_plugin_option(parser)


class Terminated(BaseException):
    """SIGTERM (what a cluster scheduler sends), raised in the main thread like Ctrl-C's KeyboardInterrupt."""


def _terminate(signum, frame):
    raise Terminated()


def run(main: Callable[[Optional[Sequence[str]]], object], argv: Optional[Sequence[str]] = None):
    """Call ``main(argv)``; a :class:`UserError` becomes ``error: <message>`` on stderr and exit 1.

    Ctrl-C (SIGINT) and SIGTERM stop the tool where it is: every file it writes is written
    atomically, so the last checkpoint, trial log and state are intact. One line says so and how
    to continue, and the exit status is 130 / 143 (128 + the signal), as a shell reports them.
    """
    import signal

    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread
        previous = None
    try:
        plugins.load(plugins.from_argv(sys.argv[1:] if argv is None else argv))
        return main(argv)
    except UserError as e:
        sys.exit(f"error: {one_line(e)}")
    except (KeyboardInterrupt, Terminated) as e:
        name, code = ("SIGTERM", 143) if isinstance(e, Terminated) else ("SIGINT", 130)
        again = "with --resume to continue" if _HAS_RESUME else "again"
        print(f"stopped by {name}: what was saved is intact; run the same command {again}", file=sys.stderr)
        sys.exit(code)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def add_dataclass_options(parser: argparse.ArgumentParser, cls, prefix: str = "", skip: Iterable[str] = (),
                          choices: Optional[dict] = None) -> None:
    """One ``--flag`` per dataclass field (``--prefix-field-name``), typed from its annotation;
    booleans get ``--x/--no-x``. ``choices`` maps field names to their allowed values."""
    hints = typing.get_type_hints(cls)
    notes = field_comments(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = hints[f.name]
        flag = "--" + prefix + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        text = f"{notes[f.name]} (default: {default})" if f.name in notes else f"default: {default}"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
            continue
        base = typing.get_args(kind)[0] if typing.get_origin(kind) is typing.Union else kind
        allowed = (choices or {}).get(f.name)
        if allowed:
            text += f"; one of {', '.join(map(str, allowed))}"
        parser.add_argument(flag, type=base, default=default, choices=allowed, help=text)


def field_comments(cls) -> dict:
    """field name -> the comment beside it in the dataclass's source (what ``--help`` shows)."""
    import inspect
    import re

    notes = {}
    for klass in reversed(cls.__mro__):
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for match in re.finditer(r"^\s+(\w+)\s*:[^#\n]*#\s*(.+)$", source, re.M):
            notes[match.group(1)] = match.group(2).strip().replace("%", "%%")
    return notes
