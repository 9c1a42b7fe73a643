"""Cutting a network into parts: each module of the forward (stem, a cell's input convs, each block's
two ops, the concat adapters, the head) and each cell's glue, with inputs of the shapes they get in
the network, keyed by what they compute (structure and input shape)."""
from __future__ import annotations

import copy
import hashlib
from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn as nn

from ... import genotypes
from ...modeling.ops import reads_relu
from .table import Part

def _shape_key(xs: Sequence[torch.Tensor]) -> str:
    return ";".join("x".join(str(d) for d in x.shape) for x in xs)


def module_settings(module: nn.Module, containers: bool = False) -> str:
    """The plain settings of each submodule (a pool's kind, kernel and stride hold no tensors and
    show in no repr): with the repr, what tells two parts of one input shape apart. ``containers``:
    lists and dicts too (a detector head's top-k per mode)."""
    kinds = (int, float, str, bool, tuple) + ((list, dict) if containers else ())
    out = []
    for name, m in module.named_modules():
        plain = {k: v for k, v in vars(m).items() if not k.startswith("_") and isinstance(v, kinds)}
        out.append(f"{name}={sorted(plain.items())}")
    return ";".join(out)


def module_key(module: nn.Module, inputs: Sequence[torch.Tensor]) -> str:
    digest = hashlib.sha1((repr(module) + module_settings(module)).encode()).hexdigest()[:12]
    return f"{type(module).__name__}:{digest}:{_shape_key(inputs)}"


def net_parts(net: nn.Module, size: Tuple[int, int], batch: int, device: str, head: bool = True) -> List[Part]:
    """The parts of ``net``'s forward on a ``batch`` x 3 x H x W input, with inputs of their shapes
    (found by a forward on the meta device: shapes without compute); ``head=False``: without the
    global pool and classifier (a detector's backbone)."""
    meta = copy.deepcopy(net).to("meta").eval()
    shapes: Dict[str, List[torch.Size]] = {}
    glue: List[Tuple[str, list]] = []
    real = dict(net.named_modules())
    handles = []

    def hook(name):
        def record(module, inputs, output):
            shapes[name] = [x.shape for x in inputs if isinstance(x, torch.Tensor)]
            if name.startswith("cells.") and name.count(".") == 1:
                shapes[name + ":out"] = [output.shape]
        return record

    timed = {"stem", "global_pool", "classifier"} if head else {"stem"}
    for name, module in meta.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        if name in timed or leaf in ("pre0", "pre1", "op_a", "op_b") or parent.endswith("concat_adapters") \
                or (name.startswith("cells.") and name.count(".") == 1):
            handles.append(module.register_forward_hook(hook(name)))
    with torch.no_grad():
        meta(torch.zeros(batch, 3, *size, device="meta"))
    for h in handles:
        h.remove()

    parts: List[Part] = []
    for name, in_shapes in shapes.items():
        if name.endswith(":out") or (name.startswith("cells.") and name.count(".") == 1):
            continue
        module = real[name]
        if isinstance(module, nn.Identity) or not in_shapes:
            continue
        xs = [torch.randn(s, device=device) for s in in_shapes]
        if name.endswith(("op_a", "op_b")) and reads_relu(module):
            xs = [x.relu() for x in xs]
        parts.append(Part(module_key(module, xs), _runner(module, xs)))
    for name, module in real.items():  # the glue of each cell: ReLUs, adds, the concat
        if name.startswith("cells.") and name.count(".") == 1 and name in shapes:
            glue.append((name, _glue_shapes(module, shapes, name)))
    for name, spec in glue:
        parts.append(_glue_part(spec, device))
    return parts


def _runner(module: nn.Module, xs: List[torch.Tensor]) -> Callable[[], object]:
    module = module.eval()

    def run():
        with torch.no_grad():
            return module(*xs)
    return run


def _glue_shapes(cell: nn.Module, shapes: dict, name: str) -> dict:
    """What a cell computes besides its modules: ReLUs of the states its ops read, one add per
    block, the concat of its outputs (counts and shapes: a table key)."""
    out = shapes[name + ":out"][0]
    blocks = len(cell.blocks)
    relu_reads = len({i for block, inputs in zip(cell.blocks, cell.inputs)
                      for op, i in zip((block.op_a, block.op_b), inputs) if reads_relu(op)})
    block_shape = shapes.get(f"{name}.blocks.0.op_a", [out])[0]
    return {"blocks": blocks, "relus": relu_reads + 2, "concat": len(cell.concat), "out": list(out),
            "state": [out[0], int(out[1]) // max(len(cell.concat), 1)] + list(out[2:]),
            "in": list(block_shape)}


def _glue_part(spec: dict, device: str) -> Part:
    state = torch.randn(spec["state"], device=device)
    inputs = torch.randn(spec["in"], device=device)
    concat = [state] * spec["concat"]

    def run():
        with torch.no_grad():
            for _ in range(spec["relus"]):
                inputs.relu()
            for _ in range(spec["blocks"]):
                state + state
            return torch.cat(concat, 1)
    key = f"glue:{spec['blocks']}:{spec['relus']}:{spec['concat']}:{_shape_key([state, inputs])}"
    return Part(key, run)


def cells_and_filters(arch: str) -> Tuple[int, int]:
    """``arch`` read as NASNet-A's N@F: (normal cells per stage, filters of the first stage). Every
    cell is sized by these two numbers, so cells with another concat width compare at equal filters."""
    from ...modeling.layout import parse_arch

    return parse_arch(arch, genotypes.get("nasnet_a"))
