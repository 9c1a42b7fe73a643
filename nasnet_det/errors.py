"""Errors that mean "bad input" (shown to a user as one line), as opposed to bugs."""
from .genotypes import GenotypeError
from .modeling.convert import CheckpointError


def _user_errors():
    from .data import DataError

    errors = [GenotypeError, CheckpointError, DataError]
    try:
        from .detection.datasets import DatasetError
        from .detection.train import ConfigError
        errors += [DatasetError, ConfigError]
    except ImportError:  # Detectron2 not installed: only the modeling errors exist
        pass
    return tuple(errors)


USER_ERRORS = _user_errors()
