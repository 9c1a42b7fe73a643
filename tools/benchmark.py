#!/usr/bin/env python
"""Speed and memory against the reference implementations, measured in the same run.

A thin wrapper, as Detectron2 keeps tools/: the command is nasnet_det.commands.benchmark (also
`nasnet-det benchmark ...` once the package is installed). See --help.
"""
from nasnet_det import cli
from nasnet_det.commands.benchmark import main

if __name__ == "__main__":
    cli.run(main)
