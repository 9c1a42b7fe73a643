#!/usr/bin/env python
"""Export a NASNet detector to TorchScript or ONNX (Detectron2's TracingAdapter), checked against eager.

A thin wrapper, as Detectron2 keeps tools/: the command is nasnet_det.commands.export (also
`nasnet-det export ...` once the package is installed). See --help.
"""
from nasnet_det import cli
from nasnet_det.commands.export import main

if __name__ == "__main__":
    cli.run(main)
