#!/usr/bin/env python
"""Run a NASNet detector on photos: one drawn image per input and OUT/predictions.json (COCO results).

A thin wrapper, as Detectron2 keeps tools/: the command is nasnet_det.commands.predict (also
`nasnet-det predict ...` once the package is installed). See --help.
"""
from nasnet_det import cli
from nasnet_det.commands.predict import main

if __name__ == "__main__":
    cli.run(main)
