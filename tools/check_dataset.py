#!/usr/bin/env python
"""Check a detection dataset up front: decode every image, validate every record.

A thin wrapper, as Detectron2 keeps tools/: the command is nasnet_det.commands.check_dataset (also
`nasnet-det check-dataset ...` once the package is installed). See --help.
"""
from nasnet_det import cli
from nasnet_det.commands.check_dataset import main

if __name__ == "__main__":
    cli.run(main)
