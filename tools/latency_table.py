#!/usr/bin/env python
"""A latency table of the NASNet space on this device, and predicted latency from it.

A thin wrapper, as Detectron2 keeps tools/: the command is nasnet_det.commands.latency_table (also
`nasnet-det latency-table ...` once the package is installed). See --help.
"""
from nasnet_det import cli
from nasnet_det.commands.latency_table import main

if __name__ == "__main__":
    cli.run(main)
