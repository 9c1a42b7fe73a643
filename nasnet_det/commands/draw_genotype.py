"""Draw a genotype's cells (inputs, ops, combine nodes, output concat), like the paper's figure 4.

    python tools/draw_genotype.py nasnet_a --out nasnet_a.png      # nasnet_a_normal.png, nasnet_a_reduction.png
    python tools/draw_genotype.py runs/demo/genotype.json --out cell.png --cell normal

Uses graphviz's `dot` when it is installed, matplotlib otherwise (--engine to choose).
"""
import os

from .. import cli
from .. import genotypes
from ..viz import draw_cell


def main(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("genotype", help="a published name or a .json path")
    p.add_argument("--out", required=True, help="FILE.png; with both cells, FILE_normal.png and FILE_reduction.png")
    p.add_argument("--cell", choices=["normal", "reduction", "both"], default="both")
    p.add_argument("--engine", choices=["graphviz", "matplotlib"])
    args = p.parse_args(argv)
    genotype = genotypes.get(args.genotype)
    stem, ext = os.path.splitext(args.out)
    cells = ["normal", "reduction"] if args.cell == "both" else [args.cell]
    for name in cells:
        path = f"{stem}_{name}{ext or '.png'}" if args.cell == "both" else (args.out if ext else args.out + ".png")
        draw_cell(getattr(genotype, name), path, f"{genotype.name or 'genotype'}: {name} cell", args.engine)
        print(path)


if __name__ == "__main__":
    cli.run(main)
