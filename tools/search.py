#!/usr/bin/env python
"""Search a NASNet cell; writes OUT/genotype.json (usable as MODEL.NASNET.GENOTYPE).

A thin wrapper, as Detectron2 keeps tools/: the command is nasnet_det.commands.search (also
`nasnet-det search ...` once the package is installed). See --help.
"""
from nasnet_det import cli
from nasnet_det.commands.search import main

if __name__ == "__main__":
    cli.run(main)
