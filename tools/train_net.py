#!/usr/bin/env python
"""Train or evaluate a NASNet Faster R-CNN with Detectron2.

A thin wrapper, as Detectron2 keeps tools/: the command is nasnet_det.commands.train_net (also
`nasnet-det train-net ...` once the package is installed). See --help.
"""
from nasnet_det import cli
from nasnet_det.commands.train_net import main

if __name__ == "__main__":
    cli.run(main)
