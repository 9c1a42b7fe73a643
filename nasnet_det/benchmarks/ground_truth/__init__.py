"""The ranking ground truth: cells of the NASNet space, each trained stand-alone with several seeds.

``cells.jsonl`` (shipped with the package) holds one JSON object per cell: ``id``, ``source``
(``published`` / ``mutation`` / ``random``), ``genotype``, ``accuracy`` (the mean over seeds),
``accuracies`` (per seed), ``params``, ``mult_adds`` and ``seconds`` (per seed). The task, the
cells and the command that regenerates the file are in :mod:`nasnet_det.benchmarks.truth`.
"""
import os

CELLS = os.path.join(os.path.dirname(__file__), "cells.jsonl")
