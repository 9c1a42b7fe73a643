#!/usr/bin/env python
"""The published genotypes as networks, measured against the released models (params, mult-adds).

A thin wrapper, as Detectron2 keeps tools/: the command is nasnet_det.commands.model_table (also
`nasnet-det model-table ...` once the package is installed). See --help.
"""
from nasnet_det import cli
from nasnet_det.commands.model_table import main

if __name__ == "__main__":
    cli.run(main)
