#!/usr/bin/env python
"""Scale a cell to a latency budget: the N@F that meets a target on a device, from a latency table.

A thin wrapper, as Detectron2 keeps tools/: the command is nasnet_det.commands.fit_budget (also
`nasnet-det fit-budget ...` once the package is installed). See --help.
"""
from nasnet_det import cli
from nasnet_det.commands.fit_budget import main

if __name__ == "__main__":
    cli.run(main)
