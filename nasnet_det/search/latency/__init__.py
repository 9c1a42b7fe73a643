"""Latency on the device at hand, as a lookup table (ProxylessNAS / FBNet) and a sum-of-parts model.

A network's forward is cut into *parts*: the stem, each cell's input convs, each block's two ops,
the concat adapters, the head, and each cell's glue (the ReLUs, adds and the concat between them).
Each part is timed alone on this device at the input shape it gets in the network (warm-up, then
the median of repeated runs) and stored under a key that names what it computes (the module's
structure and the input shape), so one table serves every cell of the space at that size. A
network's predicted latency is the sum of its parts' entries.

The table is a JSONL file: a header (device, torch, threads, batch, input size) and one line per
part, appended as it is timed, so a killed build continues where it stopped and a table measured on
the target device can be carried to the machine that searches (:func:`check_header`).

The package: :mod:`.table` (the file, its header, the timer), :mod:`.parts` (cutting a network into
parts), :mod:`.networks` (the registry of network kinds, prediction, building a table),
:mod:`.classifier` (the NASNet kind; the detector kind is :mod:`nasnet_det.detection.latency`) and
:mod:`.reward` (MnasNet's reward).
"""
from .classifier import classifier_net, latency_check, latency_forward, latency_parts
from .networks import NETWORKS, build_table, load_network, measure_forward, network_parts, predict, space_cells
from .parts import cells_and_filters, module_key, module_settings, net_parts
from .reward import LatencyReward
from .table import (CLASSIFIER, MATCHING, TABLE_VERSION, LatencyError, LatencyTable, Part, check_header,
                    device_header, read_table, time_part)

__all__ = ["CLASSIFIER", "MATCHING", "NETWORKS", "TABLE_VERSION", "LatencyError", "LatencyReward", "LatencyTable",
           "Part", "build_table", "cells_and_filters", "check_header", "device_header", "latency_check",
           "latency_forward", "latency_parts", "load_network", "measure_forward", "module_key", "module_settings",
           "net_parts", "classifier_net", "network_parts", "predict", "read_table", "space_cells", "time_part"]
