#!/usr/bin/env python
"""The main job on its embedded default: search -> pretrain -> detect -> evaluate, on the CPU.

A thin wrapper, as Detectron2 keeps tools/: the command is nasnet_det.commands.demo (also
`nasnet-det demo ...` once the package is installed). See --help.
"""
from nasnet_det import cli
from nasnet_det.commands.demo import main

if __name__ == "__main__":
    cli.run(main)
