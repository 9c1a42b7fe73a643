"""Speed and memory against the reference implementations, measured in the same run
(``tools/benchmark.py`` is the command line; :mod:`.timing` is the shared harness)."""
from .backbone import benchmark_backbone
from .pretrain import benchmark_pretrain
from .search import benchmark_search
from .timing import BenchConfig, compare, peak_memory, report, write_results

__all__ = ["BenchConfig", "benchmark_backbone", "benchmark_pretrain", "benchmark_search", "compare", "peak_memory",
           "report", "write_results"]
