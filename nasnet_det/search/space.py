"""The NASNet search space as a sequence of categorical decisions (paper, section 3).

Each of the two cells (normal first, then reduction) has B blocks; each block makes five
decisions: input a, input b, op a, op b, combine. Input choices of block k are the two cell inputs
and the outputs of blocks 0..k-1 (k + 2 choices); the combine decision is skipped when the space
has a single combine op. The controller predicts 2 x 5B decisions.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from .. import genotypes
from ..errors import SearchError


@dataclass(frozen=True)
class Decision:
    cell: str  # "normal" or "reduction"
    block: int
    kind: str  # "input", "op" or "combine"
    choices: Tuple  # the values this decision picks from


class SearchSpace:
    def __init__(self, num_blocks: int = 5, ops: Sequence[str] = genotypes.PAPER_OPS, combines: Sequence[str] = ("add",)):
        unknown = [op for op in ops if op not in genotypes.OPS] + [c for c in combines if c not in genotypes.COMBINES]
        if unknown:
            raise SearchError(f"not in the op/combine vocabulary: {unknown}")
        if num_blocks < 1 or not ops or not combines:
            raise SearchError("a search space needs at least one block, one op and one combine")
        self.num_blocks, self.ops, self.combines = num_blocks, tuple(ops), tuple(combines)
        self.decisions: List[Decision] = []
        for cell in ("normal", "reduction"):
            for k in range(num_blocks):
                inputs = tuple(range(k + 2))
                self.decisions += [Decision(cell, k, "input", inputs), Decision(cell, k, "input", inputs),
                                   Decision(cell, k, "op", self.ops), Decision(cell, k, "op", self.ops)]
                if len(self.combines) > 1:
                    self.decisions.append(Decision(cell, k, "combine", self.combines))

    def __len__(self) -> int:
        return len(self.decisions)

    @property
    def sizes(self) -> List[int]:
        return [len(d.choices) for d in self.decisions]

    @property
    def names(self) -> List[str]:
        """One name per decision, ``<cell>.b<block>.<kind><slot>``: ``normal.b0.input0``, ``normal.b0.op1``,
        ``reduction.b4.combine`` (the parameter names of the optuna strategies and journal)."""
        per_block = 5 if len(self.combines) > 1 else 4
        return [f"{d.cell}.b{d.block}.{d.kind}{'' if d.kind == 'combine' else (i % per_block) % 2}"
                for i, d in enumerate(self.decisions)]

    def describe(self) -> dict:
        return {"num_blocks": self.num_blocks, "ops": list(self.ops), "combines": list(self.combines)}

    @classmethod
    def from_description(cls, d: dict) -> "SearchSpace":
        return cls(d["num_blocks"], d["ops"], d["combines"])

    def decode(self, indices: Sequence[int], name: str = "", concat: Optional[dict] = None) -> genotypes.Genotype:
        """Decision indices -> a validated genotype. The output concat is the paper's (unused
        states) unless ``concat`` gives {"normal": [...], "reduction": [...]}."""
        if len(indices) != len(self.decisions):
            raise SearchError(f"expected {len(self.decisions)} decisions, got {len(indices)}")
        values = [d.choices[i] for d, i in zip(self.decisions, indices)]
        per_block = 5 if len(self.combines) > 1 else 4
        cells = {}
        for c, cell in enumerate(("normal", "reduction")):
            blocks = []
            for k in range(self.num_blocks):
                v = values[(c * self.num_blocks + k) * per_block:][:per_block]
                blocks.append(genotypes.Block((v[0], v[1]), (v[2], v[3]), v[4] if per_block == 5 else self.combines[0]))
            cells[cell] = genotypes.Cell(tuple(blocks), None if not concat else tuple(concat[cell]))
        return genotypes.make(cells["normal"], cells["reduction"], name=name)

    def encode(self, genotype: genotypes.Genotype) -> List[int]:
        """A genotype -> its decision indices; fails if it lies outside this space."""
        indices = []
        for cell_name, cell in (("normal", genotype.normal), ("reduction", genotype.reduction)):
            if len(cell.blocks) != self.num_blocks:
                raise SearchError(f"{cell_name} cell has {len(cell.blocks)} blocks, the space {self.num_blocks}")
            for b in cell.blocks:
                values = list(b.inputs) + list(b.ops) + ([b.combine] if len(self.combines) > 1 else [])
                if len(self.combines) == 1 and b.combine != self.combines[0]:
                    raise SearchError(f"combine {b.combine!r} is not in this space ({self.combines})")
                for value in values:
                    d = self.decisions[len(indices)]
                    if value not in d.choices:
                        raise SearchError(f"{cell_name} block {d.block}: {value!r} is not a choice of {d.kind} {d.choices}")
                    indices.append(d.choices.index(value))
        return indices

    def mutate(self, indices: Sequence[int], rng) -> List[int]:
        """Change one input or op decision to another value (AmoebaNet's mutation)."""
        out = list(indices)
        candidates = [i for i, d in enumerate(self.decisions) if d.kind in ("input", "op") and len(d.choices) > 1]
        i = candidates[rng.randrange(len(candidates))]
        out[i] = (out[i] + 1 + rng.randrange(self.sizes[i] - 1)) % self.sizes[i]
        return out

    def random(self, rng) -> List[int]:
        return [rng.randrange(n) for n in self.sizes]

    def random_at(self, seed: int, step: int) -> List[int]:
        """Uniform decisions that depend on (seed, step) only: a resumed run draws the same ones."""
        return self.random(random.Random(step_seed(seed, step)))


def step_seed(seed: int, step: int) -> int:
    """One integer seed per (seed, step) pair, for draws that must repeat after a resume."""
    return seed * 1_000_003 + step
