"""Draw a genotype's cells (inputs, ops, combine nodes, output concat), like the paper's figure 4.

    python tools/draw_genotype.py nasnet_a --out nasnet_a.png      # nasnet_a_normal.png, nasnet_a_reduction.png
    python tools/draw_genotype.py runs/demo/genotype.json --out cell.png --cell normal

Uses graphviz's `dot` when it is installed, matplotlib otherwise (--engine to choose).
"""
import os

from .. import cli
from .. import genotypes
from ..errors import UserError
from ..viz import draw_cell


MAX_BLOCKS = 64  # published cells have 5; a drawing of 64 blocks takes about a second


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
    for name in cells:  # a layout of thousands of nodes runs for minutes with nothing to show for it
        blocks = len(getattr(genotype, name).blocks)
        if blocks > MAX_BLOCKS:
            raise UserError(f"{args.genotype}: the {name} cell has {blocks} blocks; a drawing stays readable (and "
                            f"finishes in seconds) up to {MAX_BLOCKS}: draw a smaller cell")
    for name in cells:
        path = f"{stem}_{name}{ext or '.png'}" if args.cell == "both" else (args.out if ext else args.out + ".png")
        draw_cell(getattr(genotype, name), path, f"{genotype.name or 'genotype'}: {name} cell", args.engine)
        print(path)


if __name__ == "__main__":
    cli.run(main)
