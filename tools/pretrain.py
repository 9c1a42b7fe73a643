#!/usr/bin/env python
"""Train a NASNet classifier from any genotype with the paper's recipe; export it for detection.

A thin wrapper, as Detectron2 keeps tools/: the command is nasnet_det.commands.pretrain (also
`nasnet-det pretrain ...` once the package is installed). See --help.
"""
from nasnet_det import cli
from nasnet_det.commands.pretrain import main

if __name__ == "__main__":
    cli.run(main)
