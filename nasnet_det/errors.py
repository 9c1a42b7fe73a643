"""Errors that mean "bad input", as opposed to bugs.

Every stage raises a subclass of :class:`UserError` for input it cannot use (a file, a config key,
an option, a dataset record); the message names the culprit and the fix. The command-line tools
print such an error as one line, ``error: ...``, and exit non-zero; any other exception is a bug
and keeps its traceback. This module imports nothing of the package, so any module can use it.
"""


class UserError(ValueError):
    """Bad input: the message names the file, key or value and says what would work."""


class GenotypeError(UserError):
    """A genotype that does not describe a valid cell; the message names the block and the problem."""


class CheckpointError(UserError):
    """A checkpoint that cannot be read or does not fit the model; the message names the keys."""


class DataError(UserError):
    """A classification dataset that cannot be read; the message names the path."""


class DatasetError(UserError):
    """A detection dataset that cannot be read; the message names the file and the record."""


class ConfigError(UserError):
    """A configuration that cannot be used; the message names the file and the key."""


class SearchError(UserError):
    """A search that cannot start or continue; the message says why."""


class PluginError(UserError):
    """A ``--plugin`` module that fails to load, or a name a worker does not know because its plug-in
    was not loaded there; the search stops on it rather than score children as failures."""


class InputError(UserError):
    """A tensor a network cannot take (too small, wrong channel count)."""


class StorageError(UserError):
    """A write the disk refused (full, a file-size limit, read-only); the message names the file."""


# errno values of a disk that refuses a write: ENOSPC, EFBIG (ulimit -f), EDQUOT, EROFS, EIO, EACCES
STORAGE_ERRNOS = (28, 27, 122, 30, 5, 13)
UNWRITABLE_ERRNOS = (30, 13)  # the folder is read-only or not ours: no space to free


def storage_advice(error: BaseException) -> str:
    """What to do about a refused write: another folder where it cannot be written, else room."""
    if isinstance(error, OSError) and error.errno in UNWRITABLE_ERRNOS:
        return "choose a folder you can write to"
    return "free space or raise the file-size limit (ulimit -f), or choose another folder"


def storage_cause(error: BaseException):
    """Why a write failed, where the disk refused it (an OSError of those errnos, or torch's
    serializer's "file write failed"); None for any other error (a bug keeps its traceback)."""
    if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
        return (error.strerror or f"errno {error.errno}").lower()
    text = str(error)
    # torch's zip writer (inline_container.cc) reports a short write as "file write failed" or, under a
    # file-size limit, as "unexpected pos": either way the disk took less than it was given
    if isinstance(error, RuntimeError) and any(s in text for s in ("file write failed", "PytorchStreamWriter failed",
                                                                   "inline_container.cc")):
        return "the write failed (a full disk or a file-size limit)"
    return None


def require_ints(obj, lows: dict, error: type = UserError, what: str = "", optional: tuple = ()) -> None:
    """Raise ``error`` naming the first field of ``obj`` in ``lows`` that is not an integer of at
    least its bound (a bool or a float is not; fields in ``optional`` may be None)."""
    for name, low in lows.items():
        value = getattr(obj, name)
        if value is None and name in optional:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise error(f"{what}{name} must be an integer of at least {low}, got {value!r}")


def one_line(error: BaseException) -> str:
    """The message of ``error`` as one line.

    An error raised inside a DataLoader worker comes back wrapped ("Caught X in DataLoader worker
    process 0. Original Traceback ...: X: message"): its last line is the original message.
    """
    text = str(error).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        prefix = f"{type(error).__module__}.{type(error).__name__}: "
        text = last[len(prefix):] if last.startswith(prefix) else last.split(": ", 1)[-1]
    return " ".join(text.split())
