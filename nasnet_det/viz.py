"""Pictures: cell diagrams (like the paper's figure 4)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Optional

from . import genotypes
from .errors import UserError
from .io import atomic_path

_COMBINE_LABEL = {"add": "add", "concat": "concat", "add_layernorm": "add+LN", "add_instancenorm": "add+IN"}
_STATE_NAMES = {0: "h[i]\n(current)", 1: "h[i-1]\n(previous)"}


def dot_program() -> Optional[str]:
    """Graphviz's ``dot``, or graphviz-pure (a self-contained port: ``pip install graphviz-pure``,
    found beside this Python too, for a virtual environment that is not on PATH); None if neither."""
    scripts = os.path.dirname(sys.executable)
    for name in ("dot", "graphviz-pure"):
        found = shutil.which(name) or shutil.which(name, path=scripts)
        if found:
            return found
    return None


def _dot_source(cell: genotypes.Cell, title: str) -> str:
    lines = ["digraph cell {", "rankdir=LR;", f'label="{title}"; labelloc=t;',
             'node [fontname="Helvetica", fontsize=11];']
    lines += [f's{i} [label="{_STATE_NAMES[i]}", shape=box, style=filled, fillcolor="#a8d8ea"];' for i in (0, 1)]
    for k, b in enumerate(cell.blocks):
        lines.append(f's{k + 2} [label="{_COMBINE_LABEL[b.combine]}", shape=circle, style=filled, fillcolor="#aa96da"];')
        for side, (i, op) in enumerate(zip(b.inputs, b.ops)):
            lines.append(f'op{k}_{side} [label="{op}", shape=box, style="rounded,filled", fillcolor="#ffffd2"];')
            lines += [f"s{i} -> op{k}_{side};", f"op{k}_{side} -> s{k + 2};"]
    lines.append('out [label="concat", shape=box, style=filled, fillcolor="#fcbad3"];')
    lines += [f"s{i} -> out;" for i in cell.output_states()]
    return "\n".join(lines + ["}"])


def _draw_matplotlib(cell: genotypes.Cell, title: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = len(cell.blocks)
    fig, ax = plt.subplots(figsize=(2.2 * blocks + 4, 4.5), dpi=110)
    pos = {0: (0.0, 1.2), 1: (0.0, -1.2)}
    for k in range(blocks):
        pos[k + 2] = (2.4 * k + 3.4, 0.0)
    out = (2.4 * blocks + 2.6, 0.0)

    def box(xy, text, colour, shape="round"):
        ax.annotate(text, xy, ha="center", va="center", fontsize=8, zorder=3,
                    bbox=dict(boxstyle=f"{shape},pad=0.35", fc=colour, ec="0.3"))

    def arrow(a, b, rad=0.0):
        ax.annotate("", b, a, zorder=1, arrowprops=dict(arrowstyle="-|>", color="0.45", lw=0.9, shrinkA=14,
                                                        shrinkB=14, connectionstyle=f"arc3,rad={rad}"))

    for i in (0, 1):
        box(pos[i], _STATE_NAMES[i], "#a8d8ea", "square")
    for k, b in enumerate(cell.blocks):
        cx, _ = pos[k + 2]
        for side, (i, op) in enumerate(zip(b.inputs, b.ops)):
            op_xy = (cx - 1.1, 0.75 if side == 0 else -0.75)
            box(op_xy, op, "#ffffd2")
            arrow(pos[i], op_xy, rad=0.25 if i >= 2 else 0.0)
            arrow(op_xy, pos[k + 2])
        box(pos[k + 2], f"{_COMBINE_LABEL[b.combine]}\nh[{k + 2}]", "#aa96da", "circle")
    box(out, "concat", "#fcbad3", "square")
    for i in cell.output_states():
        arrow(pos[i], out, rad=-0.3 if i < 2 else 0.15)
    ax.set_xlim(-1.0, out[0] + 1.0)
    ax.set_ylim(-2.0, 2.0)
    ax.axis("off")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def draw_cell(cell: genotypes.Cell, path: str, title: str = "", engine: Optional[str] = None) -> str:
    """Draw one cell to a PNG: inputs, ops, combine nodes, output concat.

    ``engine``: "graphviz" (needs a dot program, :func:`dot_program`), "matplotlib", or None for
    graphviz when one is installed. Graphviz lays the cell out cleanly (no edge across an op box);
    the matplotlib drawing is the fallback.
    """
    program = dot_program()
    engine = engine or ("graphviz" if program else "matplotlib")
    if engine not in ("graphviz", "matplotlib"):
        raise UserError(f"unknown drawing engine {engine!r}: use graphviz or matplotlib")
    if engine == "graphviz" and not program:
        raise UserError("the graphviz engine needs a dot program: pip install graphviz-pure (make install does), "
                        "or apt-get install graphviz; or use the matplotlib engine")
    if os.path.splitext(path)[1].lower() not in (".png", ".svg", ".pdf"):
        raise UserError(f"{path}: a cell drawing is written as .png, .svg or .pdf")
    if engine == "graphviz":
        with atomic_path(path) as tmp:
            subprocess.run([program, f"-T{os.path.splitext(path)[1][1:].lower()}", "-o", tmp], input=_dot_source(cell, title), text=True,
                           check=True, capture_output=True)
    else:
        _draw_matplotlib(cell, title, path)
    return path
