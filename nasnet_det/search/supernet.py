"""The one-shot supernet: every child of a search space in one network with shared weights (ENAS).

For every cell position, every block, every candidate input state and every candidate op, the
supernet holds one op module (a block's two inputs choose among the same candidates), built by the interpreter's op table
(:func:`nasnet_det.modeling.ops.build_op`). ``forward(x, genotype)`` runs only the genotype's path,
through the interpreter's own block loop (:func:`nasnet_det.modeling.cell.run_blocks`), in the
cell stacking of :func:`nasnet_det.modeling.layout.cell_plan`: a genotype's path computes exactly
what ``build_nasnet(genotype)`` computes with the weights :meth:`SuperNet.child_state_dict` gives
it (a test checks this for random genotypes, both stems).

Cell outputs vary in width with the genotype (a cell concatenates the states no block reads). The
supernet keeps them in the *widest layout*: all ``B + 2`` states in index order, ``F`` channels
each, zero where the child does not concatenate the state. Every reader of a cell output starts
with a ReLU and a 1x1 conv (the next cells' input convs, the classifier after pooling, an FPN
lateral conv), and a linear map of zero channels adds nothing, so reading the widest layout with
the full weight is reading the child's output with the weight's columns of its states: those
columns are what :meth:`SuperNet.child_state_dict` exports.

Only combines of width ``F`` (``add`` and its normalised forms) are supported: ``concat`` blocks
would change widths inside the cell.

**Why uniform-path training stalled, and the initialisation that fixes it** (:data:`RECIPE`, each
part switchable for measurement; ``docs/search.md`` has the table). With independent random
weights, a path that changes its wiring or its ops each step asks every reader to make sense of an
unrelated set of channels each step: the gradients of consecutive steps do not add up, and the
supernet stays near chance while any one path trained alone learns in tens of steps. Four parts:

- ``equal_columns``: every reader of a widest layout (the cell input 1x1 convs, the factorized
  reductions, the classifier) starts with the same weight columns for every state slot, so at
  init it reads the *sum* of whichever states a child concatenates;
- ``identity_ops``: every conv of a candidate op starts at the identity (a centre tap of 1, the
  dirac kernel) plus small noise, so channels keep their meaning whichever op a path takes;
- ``equal_candidates``: the candidates of one op and shape in a cell start equal (the same op on
  another input state is the same function at init);
- ``head_norm``: a non-affine BatchNorm on the pooled features before the classifier (the last
  cell's scale varies with the path). :meth:`SuperNet.child_state_dict` folds it into the
  classifier, so the inherited child is still exactly a child.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import genotypes
from ..errors import SearchError
from ..modeling.cell import BlockStep, concat_adapter, input_convs, input_states, op_stride, run_blocks
from ..modeling.layout import CellSpec, NASNetConfig, cell_plan
from ..modeling.nasnet import build_stem, init_weights
from ..modeling.ops import build_op, combine_norm
from .space import SearchSpace


RECIPE = ("equal_columns", "identity_ops", "equal_candidates", "head_norm")
IDENTITY_NOISE = 0.05  # the std of the noise added to the identity kernels (identity_ops)


def parse_recipe(text: str) -> tuple:
    """``"all"``, ``"none"`` or a comma list of :data:`RECIPE` parts."""
    if text == "all":
        return RECIPE
    if text in ("none", ""):
        return ()
    parts = tuple(p.strip() for p in text.split(","))
    unknown = [p for p in parts if p not in RECIPE]
    if unknown:
        raise SearchError(f"supernet recipe: unknown part(s) {', '.join(unknown)}; use all, none or a comma list "
                          f"of {', '.join(RECIPE)}")
    return parts


def check_shareable(combines) -> None:
    """The combines a supernet can share weights across: those whose output is F wide."""
    if "concat" in combines:
        raise SearchError("--method oneshot supports add combines only (add, add_layernorm, add_instancenorm): "
                          "a concat block changes widths inside the cell; drop concat from --combines")


def widest_genotype(num_blocks: int) -> genotypes.Genotype:
    """A genotype whose cells concatenate every state: the widths the supernet is built for."""
    cell = genotypes.Cell(tuple(genotypes.Block((0, 0), ("identity", "identity"), "add")
                                for _ in range(num_blocks)), tuple(range(num_blocks + 2)))
    return genotypes.make(cell, cell, name="widest")


class SuperCell(nn.Module):
    """Every cell of one position of the network: all candidate ops on all candidate inputs."""

    def __init__(self, spec: CellSpec, space: SearchSpace, avg_pool_pad: str, share_inputs: bool = False):
        super().__init__()
        self.share_inputs = share_inputs
        c = self.filters = spec.filters
        self.reduction = spec.reduction
        self.num_states = space.num_blocks + 2
        # the cell's input rules; a child whose previous input is already F wide uses it as is (forward)
        self.pre0, self.pre1, prev_width = input_convs(spec.in_channels, spec.prev_channels, c, spec.prev_is_larger,
                                                       identity_if_same=False)
        widths = [c, prev_width]
        self.blocks = nn.ModuleList()
        self.norms = nn.ModuleList()
        for k in range(space.num_blocks):
            # the block's two inputs choose among the same (state, op) candidates: a child that picks
            # one twice holds two copies of its weights
            candidates = nn.ModuleDict()
            for i in range(k + 2):
                for op in space.ops:
                    if self._key(i, op) not in candidates:  # with share_inputs, block outputs share one
                        candidates[self._key(i, op)] = build_op(op, widths[i], c, op_stride(self.reduction, i),
                                                                avg_pool_pad)
            self.blocks.append(candidates)
            self.norms.append(nn.ModuleDict({name: norm for name in space.combines
                                             if (norm := combine_norm(name, c)) is not None}))
            widths.append(c)
        self.concat_adapters = nn.ModuleDict({str(i): adapter for i in (0, 1)
                                              if (adapter := concat_adapter(widths[i], c, self.reduction)) is not None})

    def forward(self, x: torch.Tensor, prev: Optional[torch.Tensor], cell: genotypes.Cell,
                prev_as_is: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``prev_as_is``: the child's previous input when its width is already F (the cell then
        uses it unchanged, as :class:`~nasnet_det.modeling.cell.CellModule` does)."""
        steps = [BlockStep(self.blocks[k][self._key(b.inputs[0], b.ops[0])],
                           self.blocks[k][self._key(b.inputs[1], b.ops[1])], b.inputs,
                           norm=self.norms[k][b.combine] if b.combine in self.norms[k] else None)
                 for k, b in enumerate(cell.blocks)]
        states = run_blocks(input_states(self.pre0, self.pre1, x, prev, prev_as_is), steps)
        concat = set(cell.output_states())
        out = []
        zeros = None
        for i in range(self.num_states):
            if i in concat:
                out.append(self.concat_adapters[str(i)](states[i]) if str(i) in self.concat_adapters else states[i])
            else:
                if zeros is None:
                    zeros = states[-1].new_zeros(()).expand_as(states[-1])
                out.append(zeros)
        return torch.cat(out, 1)

    def _key(self, state: int, op: str) -> str:
        # share_inputs: the block outputs a block may read share one op per op name (the cell inputs,
        # of other widths and strides, keep their own)
        return f"{state if state < 2 or not self.share_inputs else 2}_{op}"

    def columns(self, cell: genotypes.Cell) -> List[int]:
        """The widest layout's channels that the child's output holds, in the child's order."""
        return [s * self.filters + j for s in cell.output_states() for j in range(self.filters)]


class SuperNet(nn.Module):
    """All children of ``space`` at the size of ``cfg`` (stems, stacking and head of the children).

    ``forward(x, genotype)`` returns the logits of the genotype's path; :meth:`forward_taps` the
    ReLU'd outputs of named cells in the widest layout, for a detector's feature pyramid.
    """

    def __init__(self, space: SearchSpace, cfg: NASNetConfig, share_inputs: bool = False,
                 recipe: Iterable[str] = RECIPE):
        super().__init__()
        cfg = cfg.validate()
        check_shareable(space.combines)
        if cfg.aux_head or cfg.drop_path_keep_prob < 1.0:
            raise SearchError("the one-shot supernet has no auxiliary head and no drop path: build it with "
                              "aux_head=False and drop_path_keep_prob=1.0")
        self.space, self.cfg = space, cfg
        self.plan: List[CellSpec] = cell_plan(cfg, widest_genotype(space.num_blocks))
        self.cell_names = tuple(spec.name for spec in self.plan)
        self.stem = build_stem(cfg)
        self.cells = nn.ModuleDict({spec.name: SuperCell(spec, space, cfg.avg_pool_pad, share_inputs) for spec in self.plan})
        self.num_features = self.plan[-1].out_channels
        self.classifier = nn.Linear(self.num_features, cfg.num_classes) if cfg.num_classes else nn.Identity()
        self.recipe = tuple(recipe)
        self.head_norm = (nn.BatchNorm1d(self.num_features, affine=False)
                          if "head_norm" in self.recipe and cfg.num_classes else None)
        self._routes: Dict[tuple, list] = {}
        init_weights(self)
        self._init_recipe()

    @torch.no_grad()
    def _init_recipe(self) -> None:
        slots = self.space.num_blocks + 2
        for index, spec in enumerate(self.plan):
            cell = self.cells[spec.name]
            if "identity_ops" in self.recipe:
                for candidates in cell.blocks:
                    for op in candidates.values():
                        for m in op.modules():
                            if isinstance(m, nn.Conv2d):
                                nn.init.dirac_(m.weight, groups=m.groups if m.groups > 1 else 1)
                                m.weight.add_(IDENTITY_NOISE * torch.randn_like(m.weight))
            if "equal_candidates" in self.recipe:
                first: Dict[tuple, nn.Module] = {}
                for candidates in cell.blocks:
                    for key, op in candidates.items():
                        shape = (key.split("_", 1)[1],) + tuple((k, tuple(v.shape)) for k, v in op.state_dict().items())
                        if shape in first:
                            op.load_state_dict(first[shape].state_dict())
                        else:
                            first[shape] = op
            if "equal_columns" in self.recipe:
                # the readers of the cell before (pre0) and of the one before that (pre1), unless the stem
                readers = [cell.pre0] if index >= 1 else []
                if cell.pre1 is not None and index >= spec.prev_offset:
                    readers.append(cell.pre1)
                for reader in readers:
                    for m in reader.modules():
                        if isinstance(m, nn.Conv2d):
                            equalize_columns(m.weight, slots)
        if "equal_columns" in self.recipe and isinstance(self.classifier, nn.Linear):
            equalize_columns(self.classifier.weight, slots)

    def check(self, genotype: genotypes.Genotype) -> genotypes.Genotype:
        """The genotype, if it is a child of this supernet's space (else :class:`SearchError`)."""
        self.space.encode(genotype)
        for name, cell in (("normal", genotype.normal), ("reduction", genotype.reduction)):
            if any(s >= self.space.num_blocks + 2 for s in cell.output_states()):
                raise SearchError(f"{name} cell concatenates a state the space does not have")
        return genotype

    def _route(self, genotype: genotypes.Genotype) -> list:
        """Per cell: its genotype cell, and whether the child uses its previous input as is."""
        key = (genotype.normal, genotype.reduction)
        if key not in self._routes:
            self.check(genotype)
            child = cell_plan(self.cfg, genotype)
            self._routes[key] = [(genotype.reduction if spec.reduction else genotype.normal,
                                  spec.prev_channels is not None and not spec.prev_is_larger
                                  and spec.prev_channels == spec.filters)
                                 for spec in child]
            if len(self._routes) > 4096:
                self._routes.pop(next(iter(self._routes)))
        return self._routes[key]

    def _columns(self, index: int, genotype: genotypes.Genotype) -> Optional[List[int]]:
        """Channels of the widest layout the child holds for state ``index`` (-1: the stem)."""
        if index < 0:
            return None
        spec = self.plan[index]
        return self.cells[spec.name].columns(genotype.reduction if spec.reduction else genotype.normal)

    def forward_taps(self, x: torch.Tensor, genotype: genotypes.Genotype,
                     names: Iterable[str] = ()) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
        """Run the genotype's path; returns the ReLU'd outputs of cells ``names`` (widest layout) and
        the last cell's output."""
        route = self._route(genotype)
        names = set(names)
        states = [self.stem(x)]
        producers = [-1]  # index into self.plan of each state's cell (-1: the stem)
        taps = {}
        for index, (spec, (cell, prev_as_is)) in enumerate(zip(self.plan, route)):
            prev = states[-spec.prev_offset] if len(states) >= spec.prev_offset else None
            as_is = None
            if prev_as_is:
                cols = self._columns(producers[-spec.prev_offset], genotype)
                as_is = prev if cols is None else prev[:, cols]
            out = self.cells[spec.name](states[-1], prev, cell, as_is)
            if spec.name in names:
                taps[spec.name] = F.relu(out)
            states, producers = states[-2:] + [out], producers[-2:] + [index]
        return taps, states[-1]

    def forward(self, x: torch.Tensor, genotype: genotypes.Genotype) -> torch.Tensor:
        _, last = self.forward_taps(x, genotype)
        pooled = torch.flatten(F.adaptive_avg_pool2d(F.relu(last), 1), 1)
        if self.head_norm is None:
            return self.classifier(pooled)
        # the child's columns only: running statistics of the others come from other paths
        cols = self._columns(len(self.plan) - 1, genotype)
        return F.linear(self.head_norm(pooled)[:, cols], self.classifier.weight[:, cols], self.classifier.bias)

    # ------------------------------------------------------------------------------------------
    def child_state_dict(self, genotype: genotypes.Genotype) -> Dict[str, torch.Tensor]:
        """The inherited weights of a child: a state dict that ``build_nasnet(genotype, ...)`` with this
        supernet's configuration loads with ``strict=True``."""
        route = self._route(genotype)
        out = dict(self.stem.state_dict(prefix="stem."))
        producers = [-1]
        for index, (spec, (cell, prev_as_is)) in enumerate(zip(self.plan, route)):
            prefix, sc = f"cells.{spec.name}.", self.cells[spec.name]
            inputs = {"pre0": (sc.pre0, producers[-1])}
            if sc.pre1 is not None and not prev_as_is:
                inputs["pre1"] = (sc.pre1, producers[-spec.prev_offset])
            for name, (module, producer) in inputs.items():
                cols = self._columns(producer, genotype)
                for k, v in module.state_dict(prefix=f"{prefix}{name}.").items():
                    # the input convs are 1x1 convs (4-d weights): keep the child's columns
                    out[k] = v[:, cols] if cols is not None and v.ndim == 4 else v
            for k, b in enumerate(cell.blocks):
                for child_name, i in (("op_a", 0), ("op_b", 1)):
                    op = sc.blocks[k][sc._key(b.inputs[i], b.ops[i])]
                    out.update(op.state_dict(prefix=f"{prefix}blocks.{k}.{child_name}."))
                if b.combine in sc.norms[k]:
                    out.update(sc.norms[k][b.combine].state_dict(prefix=f"{prefix}blocks.{k}.norm."))
            for i in cell.output_states():
                if str(i) in sc.concat_adapters:
                    out.update(sc.concat_adapters[str(i)].state_dict(prefix=f"{prefix}concat_adapters.{i}."))
            producers = producers[-2:] + [index]
        if isinstance(self.classifier, nn.Linear):
            cols = self._columns(len(self.plan) - 1, genotype)
            weight, bias = self.classifier.weight.detach()[:, cols], self.classifier.bias.detach()
            if self.head_norm is not None:  # fold the head norm: W (x - m) / s + b = (W / s) x + (b - W m / s)
                scale = (self.head_norm.running_var[cols] + self.head_norm.eps).rsqrt()
                weight = weight * scale
                bias = bias - weight @ self.head_norm.running_mean[cols]
            out["classifier.weight"], out["classifier.bias"] = weight, bias
        return {k: v.clone() for k, v in out.items()}


def equalize_columns(weight: torch.Tensor, slots: int) -> None:
    """Give every state slot of a widest-layout reader the first slot's weight columns."""
    width = weight.shape[1]
    if width % slots:
        return
    per = width // slots
    for s in range(1, slots):
        weight[:, s * per:(s + 1) * per] = weight[:, :per]


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, batches: Iterable, forward) -> None:
    """Re-estimate BN statistics of the path ``forward(model, x)`` runs (SPOS, DetNAS): the shared
    running statistics mix every child's, which misjudges any one of them."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the calibration batches
    was_training = model.training
    model.train()
    try:
        for x in batches:
            forward(model, x)
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum
        model.train(was_training)
