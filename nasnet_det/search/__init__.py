"""Architecture search in the NASNet space: strategies, child training, a resumable work queue."""
from .space import SearchSpace
from .evaluators import sep_conv_fraction
from .strategies import STRATEGIES, build_strategy

__all__ = ["SearchSpace", "STRATEGIES", "build_strategy", "sep_conv_fraction"]
