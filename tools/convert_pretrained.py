#!/usr/bin/env python
"""Convert a published NASNet checkpoint to a Detectron2 checkpoint for MODEL.WEIGHTS.

A thin wrapper, as Detectron2 keeps tools/: the command is nasnet_det.commands.convert_pretrained (also
`nasnet-det convert-pretrained ...` once the package is installed). See --help.
"""
from nasnet_det import cli
from nasnet_det.commands.convert_pretrained import main

if __name__ == "__main__":
    cli.run(main)
