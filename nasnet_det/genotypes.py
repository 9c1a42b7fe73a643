"""Genotypes: cells of the NASNet search space as data.

A genotype holds two cells, ``normal`` and ``reduction``. A cell is a list of blocks; block ``k``
reads two hidden states, applies one op to each and combines the results into a new state.

State numbering (the NASNet convention, used everywhere in this package):

- ``0`` is the *current* cell input, ``h_i``: the output of the cell just before (cell k-1);
- ``1`` is the *previous* cell input, ``h_{i-1}`` (usually cell k-2);
- ``2 + j`` is the output of block ``j``.

DARTS-format genotypes (quark0/darts ``cnn/genotypes.py``) number the two cell inputs the other way
round (0 = cell k-2, 1 = cell k-1); :func:`from_darts` swaps them, so nothing else needs to care.

The cell output concatenates ``concat`` states. When ``concat`` is ``None`` it is every state that no
block reads (the paper's rule). The released NASNet-A concatenates more states than that, so its
genotype lists them explicitly.

JSON form (what :meth:`Genotype.to_json` writes and :func:`get` reads)::

    {"name": "nasnet_a",
     "normal": {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_5x5", "sep_conv_3x3"],
                            "combine": "add"}, ...],
                "concat": [1, 2, 3, 4, 5, 6]},
     "reduction": {...}}

A block may also be written as a list ``[input_a, input_b, op_a, op_b]`` or
``[input_a, input_b, op_a, op_b, combine]``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence, Tuple, Union

from .errors import GenotypeError
from .registry import Registry

__all__ = [
    "OPS", "PAPER_OPS", "COMBINES", "Block", "Cell", "Genotype", "GenotypeError",
    "from_darts", "get", "names", "ZOO",
]

# The 13 ops of the paper (section 3), in the paper's order.
PAPER_OPS: Tuple[str, ...] = (
    "identity",
    "conv_1x3_3x1",
    "conv_1x7_7x1",
    "dil_conv_3x3",
    "avg_pool_3x3",
    "max_pool_3x3",
    "max_pool_5x5",
    "max_pool_7x7",
    "conv_1x1",
    "conv_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
)


# The op vocabulary, as data (DARTS keeps its PRIMITIVES the same way): the paper's 13, then
# dil_conv_5x5 for DARTS cells. One registry holds the names and their constructors: the shipped
# ops are lazy entries of the op table (nasnet_det.modeling.ops.BUILTIN_OPS, imported where a
# network is built, so this module imports no torch), and a new op is one
# ``OPS.register(name, constructor)`` (nasnet_det.modeling.ops.register_op) in a module given to
# ``--plugin``, which every worker imports too.
OPS = Registry("op", GenotypeError)
for _name in PAPER_OPS + ("dil_conv_5x5",):
    OPS.register_lazy(_name, f"nasnet_det.modeling.ops:BUILTIN_OPS.{_name}")


def op_names() -> Tuple[str, ...]:
    """Every op a genotype may name (the names of :data:`OPS`)."""
    return tuple(OPS.names())

# add, concat (paper, NASNet-A space); add+LayerNorm, add+InstanceNorm (NASNet-B/C spaces).
COMBINES: Tuple[str, ...] = ("add", "concat", "add_layernorm", "add_instancenorm")

# Names other code bases use for our ops. TF's 'none' is the identity; DARTS' 'none' is the zero
# op, which has no place in a final cell, so it is rejected rather than aliased.
_ALIASES = {
    "skip_connect": "identity",
    "none": "identity",
    "separable_3x3_2": "sep_conv_3x3",
    "separable_5x5_2": "sep_conv_5x5",
    "separable_7x7_2": "sep_conv_7x7",
    "conv_7x1_1x7": "conv_1x7_7x1",
    "conv_3x1_1x3": "conv_1x3_3x1",
}


@dataclass(frozen=True)
class Block:
    """One block: ``combine(op_a(state[input_a]), op_b(state[input_b]))``."""

    inputs: Tuple[int, int]
    ops: Tuple[str, str]
    combine: str = "add"

    def to_dict(self) -> dict:
        return {"inputs": list(self.inputs), "ops": list(self.ops), "combine": self.combine}


@dataclass(frozen=True)
class Cell:
    blocks: Tuple[Block, ...]
    concat: Optional[Tuple[int, ...]] = None

    @property
    def num_states(self) -> int:
        return 2 + len(self.blocks)

    def used_states(self) -> Tuple[int, ...]:
        return tuple(sorted({i for b in self.blocks for i in b.inputs}))

    def output_states(self) -> Tuple[int, ...]:
        """States concatenated into the cell output."""
        if self.concat is not None:
            return self.concat
        used = set(self.used_states())
        return tuple(i for i in range(self.num_states) if i not in used)

    def to_dict(self) -> dict:
        d = {"blocks": [b.to_dict() for b in self.blocks]}
        if self.concat is not None:
            d["concat"] = list(self.concat)
        return d


@dataclass(frozen=True)
class Genotype:
    normal: Cell
    reduction: Cell
    name: str = ""
    source: str = field(default="", compare=False)

    def to_dict(self) -> dict:
        d = {"name": self.name, "normal": self.normal.to_dict(), "reduction": self.reduction.to_dict()}
        if self.source:
            d["source"] = self.source
        return d

    def to_json(self, path: Optional[str] = None, indent: int = 2) -> str:
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            from .io import write_text

            write_text(path, text + "\n")
        return text

    @classmethod
    def from_dict(cls, d: dict, where: str = "genotype") -> "Genotype":
        if not isinstance(d, dict):
            raise GenotypeError(f"{where}: expected a JSON object, got {type(d).__name__}")
        unknown = set(d) - {"name", "normal", "reduction", "source"}
        if unknown:
            raise GenotypeError(f"{where}: unknown keys {sorted(unknown)}")
        for key in ("normal", "reduction"):
            if key not in d:
                raise GenotypeError(f"{where}: missing the '{key}' cell")
        return make(
            normal=_cell_from_obj(d["normal"], f"{where}.normal"),
            reduction=_cell_from_obj(d["reduction"], f"{where}.reduction"),
            name=str(d.get("name", "")),
            source=str(d.get("source", "")),
        )

    @classmethod
    def from_json(cls, text: str, where: str = "genotype") -> "Genotype":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise GenotypeError(f"{where}: bad JSON: {e}") from None
        except RecursionError:  # a crafted or broken file nested thousands deep
            raise GenotypeError(f"{where}: JSON nested too deeply to be a genotype (a genotype is a few levels: "
                                "{\"normal\": {\"blocks\": [...]}, \"reduction\": ...})") from None
        return cls.from_dict(obj, where)

    def replace(self, **changes) -> "Genotype":
        return dataclasses.replace(self, **changes)


def _canonical_op(op: str, where: str, darts: bool = False) -> str:
    if not isinstance(op, str):
        raise GenotypeError(f"{where}: op must be a string, got {op!r}")
    if op == "none" and darts:
        raise GenotypeError(f"{where}: DARTS' 'none' is the zero op and cannot appear in a final cell")
    op = _ALIASES.get(op, op)
    known = op_names()
    if op not in known:
        raise GenotypeError(f"{where}: unknown op {op!r}; known ops: {', '.join(known)}")
    return op


def _cell_from_obj(obj, where: str) -> Cell:
    if isinstance(obj, dict):
        unknown = set(obj) - {"blocks", "concat"}
        if unknown:
            raise GenotypeError(f"{where}: unknown keys {sorted(unknown)}")
        raw_blocks, concat = obj.get("blocks"), obj.get("concat")
    else:
        raw_blocks, concat = obj, None
    if not isinstance(raw_blocks, (list, tuple)):
        raise GenotypeError(f"{where}: 'blocks' must be a list")
    if concat is not None and not isinstance(concat, (list, tuple)):
        raise GenotypeError(f"{where}: 'concat' must be a list of state indices, got {concat!r}")
    blocks = []
    for k, b in enumerate(raw_blocks):
        w = f"{where} block {k}"
        if isinstance(b, dict):
            unknown = set(b) - {"inputs", "ops", "combine"}
            if unknown:
                raise GenotypeError(f"{w}: unknown keys {sorted(unknown)}")
            inputs, ops, combine = b.get("inputs"), b.get("ops"), b.get("combine", "add")
        elif isinstance(b, (list, tuple)) and len(b) in (4, 5):
            inputs, ops, combine = b[:2], b[2:4], (b[4] if len(b) == 5 else "add")
        else:
            raise GenotypeError(f"{w}: expected {{inputs, ops, combine}} or [a, b, op_a, op_b(, combine)], got {b!r}")
        if not (isinstance(inputs, (list, tuple)) and len(inputs) == 2):
            raise GenotypeError(f"{w}: 'inputs' must be two state indices, got {inputs!r}")
        if not (isinstance(ops, (list, tuple)) and len(ops) == 2):
            raise GenotypeError(f"{w}: 'ops' must be two op names, got {ops!r}")
        blocks.append(Block(tuple(inputs), tuple(ops), combine))
    return Cell(tuple(blocks), None if concat is None else tuple(concat))


def _validate_cell(cell: Cell, where: str) -> Cell:
    if not cell.blocks:
        raise GenotypeError(f"{where}: empty cell (no blocks)")
    blocks = []
    for k, b in enumerate(cell.blocks):
        w = f"{where} block {k}"
        for i in b.inputs:
            if isinstance(i, bool) or not isinstance(i, int):
                raise GenotypeError(f"{w}: input index must be an integer, got {i!r}")
            if i < 0:
                raise GenotypeError(f"{w}: input index {i} is negative")
            if i == k + 2:
                raise GenotypeError(f"{w}: uses its own output (state {i})")
            if i > k + 2:
                if i < cell.num_states:
                    raise GenotypeError(f"{w}: uses state {i}, the output of a later block")
                raise GenotypeError(
                    f"{w}: input index {i} out of range (this cell has states 0..{cell.num_states - 1})")
        if b.combine not in COMBINES:
            raise GenotypeError(f"{w}: unknown combine {b.combine!r}; known: {', '.join(COMBINES)}")
        ops = tuple(_canonical_op(op, w) for op in b.ops)
        blocks.append(Block(tuple(b.inputs), ops, b.combine))
    cell = Cell(tuple(blocks), cell.concat)
    if cell.concat is not None:
        if not cell.concat:
            raise GenotypeError(f"{where}: 'concat' is empty")
        for i in cell.concat:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < cell.num_states:
                raise GenotypeError(f"{where}: concat index {i!r} out of range 0..{cell.num_states - 1}")
        if len(set(cell.concat)) != len(cell.concat):
            raise GenotypeError(f"{where}: concat lists a state twice: {list(cell.concat)}")
    elif not cell.output_states():
        raise GenotypeError(f"{where}: every state is used inside the cell, so the output would be empty")
    return cell


def make(normal: Cell, reduction: Cell, name: str = "", source: str = "") -> Genotype:
    """Validate and canonicalise a genotype (op aliases resolved)."""
    return Genotype(_validate_cell(normal, f"{name or 'genotype'}.normal"),
                    _validate_cell(reduction, f"{name or 'genotype'}.reduction"), name, source)


def cell(blocks: Iterable[Sequence], concat: Optional[Sequence[int]] = None) -> Cell:
    """Shorthand: ``cell([(a, b, op_a, op_b), ...], concat)``."""
    return _cell_from_obj({"blocks": list(blocks), "concat": concat}, "cell")


def from_darts(normal, normal_concat, reduce, reduce_concat, name: str = "", source: str = "") -> Genotype:
    """Import a DARTS-format genotype (``[(op, input), ...]``, two entries per block).

    DARTS numbers the cell inputs 0 = cell k-2 and 1 = cell k-1; ours are the other way round, so
    inputs (and concat indices) 0 and 1 are swapped. Block outputs (2, 3, ...) keep their numbers.
    """
    swap = {0: 1, 1: 0}

    def convert(pairs, concat, where):
        if not isinstance(pairs, (list, tuple)):
            raise GenotypeError(f"{where}: expected a list of (op, input) pairs, got {pairs!r}")
        if not isinstance(concat, (list, tuple, range)):
            raise GenotypeError(f"{where}: the concat must be a list of state indices, got {concat!r}")
        if len(pairs) % 2:
            raise GenotypeError(f"{where}: DARTS cells list two (op, input) pairs per block, got {len(pairs)}")
        for k, pair in enumerate(pairs):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)
                    and isinstance(pair[1], int) and not isinstance(pair[1], bool)):
                raise GenotypeError(f"{where} entry {k}: expected an (op name, input index) pair, got {pair!r}")
        blocks = []
        for k in range(0, len(pairs), 2):
            (op_a, in_a), (op_b, in_b) = pairs[k], pairs[k + 1]
            w = f"{where} block {k // 2} (darts)"
            blocks.append(Block((swap.get(in_a, in_a), swap.get(in_b, in_b)),
                                (_canonical_op(op_a, w, darts=True), _canonical_op(op_b, w, darts=True))))
        return Cell(tuple(blocks), tuple(swap.get(i, i) for i in concat))

    return make(convert(normal, normal_concat, f"{name or 'darts'}.normal"),
                convert(reduce, reduce_concat, f"{name or 'darts'}.reduction"), name, source)


# NASLib's op order for the DARTS space (naslib/search_spaces/nasbench301/conversions.py, OP_NAMES).
NASLIB_DARTS_OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                    "dil_conv_3x3", "dil_conv_5x5")


def from_naslib_compact(compact, name: str = "", source: str = "") -> Genotype:
    """Import NASLib's "compact" DARTS encoding (NAS-Bench-301 keys, BANANAS): ``[normal, reduce]``,
    each a list of ``(input, op index)`` pairs, two per block, inputs in DARTS numbering, ops indexing
    :data:`NASLIB_DARTS_OPS`; every block output is concatenated (NASLib's
    ``convert_compact_to_genotype``)."""
    where = name or "naslib compact"
    if not (isinstance(compact, (list, tuple)) and len(compact) == 2):
        raise GenotypeError(f"{where}: expected [normal, reduce], two lists of (input, op) pairs")
    cells = []
    for kind, pairs in zip(("normal", "reduce"), compact):
        if not isinstance(pairs, (list, tuple)) or not pairs:
            raise GenotypeError(f"{where}.{kind}: expected a list of (input, op) pairs, got {pairs!r}")
        converted = []
        for k, pair in enumerate(pairs):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(
                    isinstance(v, int) and not isinstance(v, bool) for v in pair)) or not 0 <= pair[1] < len(NASLIB_DARTS_OPS):
                raise GenotypeError(f"{where}.{kind} entry {k}: expected (input, op index 0-{len(NASLIB_DARTS_OPS) - 1}), "
                                    f"got {pair!r}")
            converted.append((NASLIB_DARTS_OPS[pair[1]], pair[0]))
        cells.append(converted)
    concat = lambda pairs: list(range(2, 2 + len(pairs) // 2))  # noqa: E731
    return from_darts(cells[0], concat(cells[0]), cells[1], concat(cells[1]), name, source)


# --------------------------------------------------------------------------------------------
# Published cells.

# tensorflow/models research/slim/nets/nasnet/nasnet.py, NasNetANormalCell / NasNetAReductionCell
# (operations, hiddenstate_indices, used_hiddenstates). The concat lists follow used_hiddenstates of
# the released code, not the paper's figure 4: only they reproduce the released parameter counts.
NASNET_A = make(
    normal=cell([
        (0, 1, "sep_conv_5x5", "sep_conv_3x3"),
        (1, 1, "sep_conv_5x5", "sep_conv_3x3"),
        (0, 1, "avg_pool_3x3", "identity"),
        (1, 1, "avg_pool_3x3", "avg_pool_3x3"),
        (0, 0, "sep_conv_3x3", "identity"),
    ], concat=[1, 2, 3, 4, 5, 6]),
    reduction=cell([
        (0, 1, "sep_conv_5x5", "sep_conv_7x7"),
        (0, 1, "max_pool_3x3", "sep_conv_7x7"),
        (0, 1, "avg_pool_3x3", "sep_conv_5x5"),
        (3, 2, "identity", "avg_pool_3x3"),
        (2, 0, "sep_conv_3x3", "max_pool_3x3"),
    ], concat=[3, 4, 5, 6]),
    name="nasnet_a",
    source="tensorflow/models research/slim/nets/nasnet/nasnet.py (NasNetA cells, as released)",
)

# tensorflow/models research/slim/nets/nasnet/pnasnet.py, PNasNetCell. PNASNet uses one cell
# everywhere; at reductions the same cell runs with stride 2.
_PNAS_CELL = cell([
    (1, 1, "sep_conv_5x5", "max_pool_3x3"),
    (0, 0, "sep_conv_7x7", "max_pool_3x3"),
    (0, 0, "sep_conv_5x5", "sep_conv_3x3"),
    (4, 0, "sep_conv_3x3", "max_pool_3x3"),
    (1, 0, "sep_conv_3x3", "identity"),
], concat=[2, 3, 4, 5, 6])
PNASNET_5 = make(
    normal=_PNAS_CELL, reduction=_PNAS_CELL, name="pnasnet_5",
    source="tensorflow/models research/slim/nets/nasnet/pnasnet.py (PNasNetCell)",
)

# quark0/darts cnn/genotypes.py, DARTS_V2 (second-order DARTS) and DARTS_V1 (first-order).
DARTS_V2 = from_darts(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    reduce_concat=[2, 3, 4, 5],
    name="darts_v2", source="quark0/darts cnn/genotypes.py (DARTS_V2)",
)
DARTS_V1 = from_darts(
    normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
    reduce_concat=[2, 3, 4, 5],
    name="darts_v1", source="quark0/darts cnn/genotypes.py (DARTS_V1)",
)

# AmoebaNet-A (Real et al. 2019, figure 4), as quark0/darts cnn/genotypes.py transcribes it.
AMOEBANET_A = from_darts(
    normal=[("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 0), ("avg_pool_3x3", 3), ("sep_conv_3x3", 1), ("skip_connect", 1),
            ("skip_connect", 0), ("avg_pool_3x3", 1)],
    normal_concat=[4, 5, 6],
    reduce=[("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
            ("sep_conv_7x7", 0), ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1),
            ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5)],
    reduce_concat=[3, 4, 6],
    name="amoebanet_a", source="quark0/darts cnn/genotypes.py (AmoebaNet), after Real et al. 2019",
)

ZOO = {g.name: g for g in (NASNET_A, PNASNET_5, AMOEBANET_A, DARTS_V1, DARTS_V2)}


def names() -> Tuple[str, ...]:
    return tuple(ZOO)


def get(name_or_path: Union[str, os.PathLike, Genotype, dict]) -> Genotype:
    """A published genotype by name (``"nasnet_a"``, ``"pnasnet_5"``, ...), one from a .json file, or
    one given as its JSON object (a dict)."""
    if isinstance(name_or_path, Genotype):
        return name_or_path
    if isinstance(name_or_path, dict):
        return Genotype.from_dict(name_or_path)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise GenotypeError(f"a genotype is a published name, a .json path, a dict or a Genotype; "
                            f"got {type(name_or_path).__name__}")
    key = str(name_or_path)
    if key in ZOO:
        return ZOO[key]
    if key.endswith(".json") or os.sep in key:
        if not os.path.isfile(key):
            raise GenotypeError(f"genotype file not found: {key}")
        try:
            with open(key, encoding="utf-8") as f:
                text = f.read()
        except UnicodeDecodeError as e:
            raise GenotypeError(f"{key}: not a UTF-8 text file ({e.reason} at byte {e.start}): "
                                "a genotype file is JSON") from None
        except OSError as e:
            raise GenotypeError(f"cannot read genotype file {key}: {e.strerror}") from None
        g = Genotype.from_json(text, where=key)
        return g if g.name else g.replace(name=os.path.splitext(os.path.basename(key))[0])
    raise GenotypeError(f"unknown genotype {key!r}: not a published name ({', '.join(ZOO)}) nor a .json path")
