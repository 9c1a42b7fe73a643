#!/usr/bin/env python
"""Score cells with a ranking method, and measure the ranking against a truth (nasnet-det rank).

A thin wrapper, as Detectron2 keeps tools/: the command is nasnet_det.commands.rank (also
`nasnet-det rank ...` once the package is installed). See --help.
"""
from nasnet_det import cli
from nasnet_det.commands.rank import main

if __name__ == "__main__":
    cli.run(main)
