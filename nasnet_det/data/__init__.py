"""Classification data (:mod:`.classification`) and the dataset grammar every stage reads (:mod:`.specs`)."""
from ..errors import DataError
from .classification import MEAN, STD, ClassificationData, build, check_spec, cifar10, digits, imagefolder
from .specs import DatasetSpec, format_spec, parse_spec

__all__ = ["MEAN", "STD", "ClassificationData", "DataError", "DatasetSpec", "build", "check_spec", "cifar10", "digits",
           "format_spec", "imagefolder", "parse_spec"]
