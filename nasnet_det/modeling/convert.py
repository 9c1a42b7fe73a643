"""Foreign checkpoints (timm, Cadene's pretrainedmodels) <-> our parameter names.

timm's ``nasnetalarge`` / ``pnasnet5large`` and Cadene's ``nasnetalarge`` / ``nasnetamobile`` name
parameters after TF's graph: ``cell_3.comb_iter_0_left.separable_1.depthwise_conv2d.weight``. Ours
are ``cells.cell_3.blocks.0.op_a.layers.0.depthwise.weight``. The mapping is a handful of regular
expressions, the same for every cell and genotype; the one irregularity is Cadene's NASNet-A Mobile,
whose normal cells are numbered 0-3, 6-9, 12-15: normal cells are matched by order, not by number.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import torch

from ..errors import CheckpointError
from ..io import torch_save

__all__ = ["CheckpointError", "from_reference_names", "load_reference_weights", "read_checkpoint",
           "save_for_detectron2", "unwrap_state_dict"]

# (pattern, replacement) applied in order to the part of a key after the cell name.
_CELL_RULES: List[Tuple[str, str]] = [
    (r"^conv_1x1\.", "pre0."),
    (r"^conv_prev_1x1\.path_1\.conv\.", "pre1.conv_path1."),
    (r"^conv_prev_1x1\.path_2\.conv\.", "pre1.conv_path2."),
    (r"^conv_prev_1x1\.final_path_bn\.", "pre1.bn."),
    (r"^conv_prev_1x1\.", "pre1."),
    (r"^path_1\.conv\.", "pre1.conv_path1."),  # NASNet's cell_stem_1 / first cell after a reduction
    (r"^path_2\.conv\.", "pre1.conv_path2."),
    (r"^final_path_bn\.", "pre1.bn."),
    (r"^comb_iter_(\d+)_left\.", r"blocks.\1.op_a."),
    (r"^comb_iter_(\d+)_right\.", r"blocks.\1.op_b."),
]
_OP_RULES: List[Tuple[str, object]] = [
    (r"separable_(\d+)\.depthwise_conv2d\.", lambda m: f"layers.{int(m.group(1)) - 1}.depthwise."),
    (r"separable_(\d+)\.pointwise_conv2d\.", lambda m: f"layers.{int(m.group(1)) - 1}.pointwise."),
    (r"bn_sep_(\d+)\.", lambda m: f"layers.{int(m.group(1)) - 1}.bn."),
]
_CELL_KEY = re.compile(r"^(cell_stem_\d+|reduction_cell_\d+|cell_\d+)\.(.+)$")


def read_checkpoint(path: str) -> dict:
    """``torch.load`` of a weights file (tensors only, never arbitrary pickled code), with errors
    that name the file instead of torch's unpickling advice."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, or pickled objects other than tensors
        reason = " ".join(str(e).split())
        reason = reason.split(". ")[0][:160]
        raise CheckpointError(f"{path} is not a readable PyTorch weights file ({type(e).__name__}: {reason}); "
                              "expected a state_dict saved with torch.save (timm's or Cadene's .pth)") from None


def unwrap_state_dict(obj) -> Dict[str, torch.Tensor]:
    """Accept a state_dict, or a checkpoint dict holding one under 'state_dict' / 'model'."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError("not a state_dict: expected a mapping of parameter names to tensors")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def _cell_renames(source_cells: Iterable[str], model) -> Dict[str, str]:
    """Map the source's cell names to ours: numbered cells (``cell_<i>``) by order, since Cadene's
    Mobile skips numbers; stem and reduction cells by name."""
    def numbered(names):
        return sorted((n for n in names if re.fullmatch(r"cell_\d+", n)), key=lambda n: int(n[5:]))

    source, ours = numbered(source_cells), numbered(model.cell_names)
    if len(source) != len(ours):
        raise CheckpointError(f"checkpoint has {len(source)} normal cells, model has {len(ours)} "
                              f"({type(model).__name__} of genotype {model.genotype.name!r}): "
                              "a checkpoint of another network size")
    renames = {n: n for n in source_cells}
    renames.update(zip(source, ours))
    return renames


def from_reference_names(state_dict: Mapping[str, torch.Tensor], model) -> Dict[str, Tuple[str, torch.Tensor]]:
    """Rename a timm/Cadene state_dict to ours. Returns {our_key: (source_key, tensor)}."""
    cells = {m.group(1) for k in state_dict if (m := _CELL_KEY.match(k))}
    renames = _cell_renames(cells, model)
    out = {}
    for key, value in state_dict.items():
        if m := _CELL_KEY.match(key):
            rest = m.group(2)
            for pattern, repl in _CELL_RULES:
                rest, n = re.subn(pattern, repl, rest)
                if n:
                    break
            for pattern, repl in _OP_RULES:
                rest = re.sub(pattern, repl, rest)
            new = f"cells.{renames[m.group(1)]}.{rest}"
        else:
            new = re.sub(r"^conv_?0\.", "stem.", key)
            new = re.sub(r"^last_linear\.", "classifier.", new)
        out[new] = (key, value)
    return out


def _describe(keys: List[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return f"({len(keys)}) " + shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_reference_weights(model, state_dict, strict: bool = True) -> Dict[str, List[str]]:
    """Load a timm/Cadene-format NASNet state_dict into our matching model.

    Strict by default: missing, unexpected or mis-shaped keys raise :class:`CheckpointError` naming
    them, and the model is left untouched. The auxiliary head is optional (timm and Cadene
    checkpoints have none). Returns the lists of missing / unexpected keys (empty when strict).
    """
    mapped = from_reference_names(unwrap_state_dict(state_dict), model)
    target = model.state_dict()
    missing = [k for k in target if k not in mapped and not k.startswith("aux_head.")]
    unexpected = [src for k, (src, _) in mapped.items() if k not in target]
    mismatched = [f"{src} {tuple(v.shape)} -> {k} {tuple(target[k].shape)}"
                  for k, (src, v) in mapped.items() if k in target and v.shape != target[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys (in the model, not in the checkpoint): {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected keys (in the checkpoint, not in the model): {_describe(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch: {_describe(mismatched)}")
    if problems and (strict or mismatched):
        raise CheckpointError(f"checkpoint does not fit {type(model).__name__}"
                              f"({model.genotype.name}, {len(model.cell_names)} cells): " + "; ".join(problems))
    model.load_state_dict({k: v for k, (_, v) in mapped.items() if k in target}, strict=False)
    return {"missing": missing, "unexpected": unexpected}


def save_for_detectron2(model, path: str, extra: Optional[dict] = None) -> str:
    """Write a NASNet's weights (our names) as a Detectron2 checkpoint for ``MODEL.WEIGHTS``.

    The file asks Detectron2's checkpointer for its name-matching heuristics, which put each
    ``stem.*`` / ``cells.<name>.*`` tensor wherever the detection model holds that cell: in the
    backbone, or in the second stage of the paper's layout. The classifier is left out. Written
    atomically.
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()
             if not k.startswith(("classifier.", "aux_head."))}
    meta = {"genotype": model.genotype.to_dict(), "config": dataclasses.asdict(model.cfg)}
    payload = {"model": state, "__author__": "nasnet_det", "matching_heuristics": True, "nasnet": meta}
    payload.update(extra or {})
    return torch_save(payload, path)
