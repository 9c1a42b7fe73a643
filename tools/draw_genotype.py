#!/usr/bin/env python
"""Draw a genotype's cells (inputs, ops, combine nodes, output concat), like the paper's figure 4.

A thin wrapper, as Detectron2 keeps tools/: the command is nasnet_det.commands.draw_genotype (also
`nasnet-det draw-genotype ...` once the package is installed). See --help.
"""
from nasnet_det import cli
from nasnet_det.commands.draw_genotype import main

if __name__ == "__main__":
    cli.run(main)
