"""The schedule of the generated code, read off the derivation's stage graph; no backend in it.

Affine stages that read the same inputs form a *group*: their pre-activations sit side by
side in one buffer.  Every input (x, h_prev, ...) gets one *product*: the weights of all
affine stages that read it, across groups, stacked into one matrix, so each input costs
one GEMM per step (or one for the whole sequence).  A product of a sequence input does
not depend on the recurrence and is *hoisted*: one GEMM over all steps before the loop.
Inside each product the groups keep the same order, so a group's columns are one slice
in every product that contains it.  After the backward loop every product's weight
gradient is one GEMM over all steps, as is the gradient of a hoisted input.

Within a group, members whose only consumer is the same one-input stage kind (the gates'
sigmoids, say) are laid out next to each other: a *block*, whose activation and whose
backward step are one vectorised call each instead of one per gate.

`stacked(plan, adjoint)` rewrites an adjoint's expression for this layout: its W^T d terms
become one `WT(Wcat_<input>, d_A_<input>)` per product computed in the loop (those of hoisted
products are one GEMM after it).  Column bounds are Python slice syntax (`0:2 * H`), shared
by every Python backend.  Nothing here is mathematics: stacked products equal the sums of
per-stage terms.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.derivation import Adjoint, Derivation, symbol
from derive.stages import Kind, Stage
from derive.terms import WT, adjoint


@dataclass(frozen=True)
class Block:
    """Adjacent group members each read by one stage of the same one-input kind."""

    members: tuple[str, ...]    # affine stage names, in column order
    outputs: tuple[str, ...]    # the consuming stages, in the same order
    start: str                  # column slice inside the group, as code
    stop: str
    sizes: tuple[str, ...]      # size symbol of each member

    @property
    def out(self) -> str:
        """The block's own contiguous buffer of outputs, e.g. Z_f_i_o."""
        return "Z_" + "_".join(self.outputs)

    @property
    def width(self) -> str:
        return code(sum((sp.Symbol(s) for s in self.sizes), sp.Integer(0)))

    def columns(self, output: str) -> str:
        """Slice of one output inside the block buffer, as code."""
        n = self.outputs.index(output)
        lo = sum((sp.Symbol(s) for s in self.sizes[:n]), sp.Integer(0))
        return f"{code(lo)}:{code(lo + sp.Symbol(self.sizes[n]))}"


@dataclass(frozen=True)
class Group:
    """Affine stages sharing their input tuple, laid out side by side."""

    index: int
    stages: tuple[Stage, ...]       # column order: blocks first
    inputs: tuple[str, ...]
    blocks: tuple[Block, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    @property
    def width(self):
        return sum((sp.Symbol(s.size) for s in self.stages), sp.Integer(0))

    def offset(self, name: str):
        """Column where member `name` starts, relative to the group."""
        before = self.stages[:self.names.index(name)]
        return sum((sp.Symbol(s.size) for s in before), sp.Integer(0))


@dataclass(frozen=True)
class Product:
    """All affine terms reading one input: one stacked weight, one GEMM."""

    input: str
    groups: tuple[Group, ...]
    hoisted: bool

    @property
    def weight(self) -> str:
        return f"Wcat_{self.input}"

    @property
    def bias(self) -> str:
        return f"bcat_{self.input}"

    @property
    def buffer(self) -> str:
        return f"A_{self.input}"

    @property
    def width(self) -> str:
        return code(sum((g.width for g in self.groups), sp.Integer(0)))

    def start(self, group: Group):
        before = self.groups[:self.groups.index(group)]
        return sum((g.width for g in before), sp.Integer(0))

    def columns(self, group: Group, name: str | None = None) -> str:
        """Slice of a group (or one member of it) in this product, as code."""
        lo = self.start(group) + (group.offset(name) if name else 0)
        hi = lo + (sp.Symbol(group.stages[group.names.index(name)].size) if name else group.width)
        return f"{code(lo)}:{code(hi)}"

    def weights_of(self, group: Group) -> list[str]:
        return [s.weights[s.inputs.index(self.input)] for s in group.stages]


@dataclass(frozen=True)
class Plan:
    groups: tuple[Group, ...]
    products: tuple[Product, ...]

    def group_of(self, name: str) -> Group | None:
        return next((g for g in self.groups if name in g.names), None)

    def products_of(self, group: Group) -> list[Product]:
        return [p for p in self.products if group in p.groups]

    def home(self, group: Group) -> Product:
        """Where the group's pre-activations are summed: an in-loop product when it has one."""
        mine = self.products_of(group)
        return next((p for p in mine if not p.hoisted), mine[0])

    def bias_home(self, group: Group) -> Product:
        """Where the group's bias is added: a hoisted product when it has one (free there)."""
        mine = self.products_of(group)
        return next((p for p in mine if p.hoisted), mine[0])

    def delta_of(self, product: Product) -> Product:
        """Products holding the same groups share one gradient buffer."""
        return next(p for p in self.products if p.groups == product.groups)

    def has_bias(self, product: Product) -> bool:
        """Whether some group's bias is added in this product (so it has a bias vector)."""
        return any(self.bias_home(g) is product and any(s.bias for s in g.stages)
                   for g in product.groups)

    def is_block_output(self, name: str) -> bool:
        found = self.block_of(name)
        return found is not None and name in found[1].outputs

    def block_of(self, name: str) -> tuple[Group, Block] | None:
        for g in self.groups:
            for b in g.blocks:
                if name in b.members or name in b.outputs:
                    return g, b
        return None


def code(expr) -> str:
    """A size expression as Python: 2 * H, D + H."""
    return str(expr).replace("*", " * ")


def stacked(plan: Plan, adj: Adjoint) -> sp.Expr:
    """The adjoint's expression with its W^T d terms replaced by the stacked products of its
    target computed in the loop; those of hoisted products are left to the GEMM after it."""
    products = [p for p in plan.products if p.input == adj.target]
    weights = {symbol(w) for p in products for g in p.groups for w in p.weights_of(g)}
    expr = adj.expr.xreplace({wt: sp.Integer(0) for wt in adj.expr.atoms(WT) if wt.args[0] in weights})
    return expr + sum((WT(symbol(p.weight), adjoint(plan.delta_of(p).buffer))
                       for p in products if not p.hoisted), sp.Integer(0))


def plan(derivation: Derivation) -> Plan:
    cell = derivation.cell
    buckets: dict[tuple, list[Stage]] = {}
    for stage in cell.stages:
        if stage.kind is Kind.AFFINE:
            buckets.setdefault((stage.inputs, stage.size), []).append(stage)
    groups = tuple(_group(derivation, n, tuple(stages))
                   for n, stages in enumerate(buckets.values()))
    inputs = list(dict.fromkeys(i for g in groups for i in g.inputs))
    products = tuple(Product(i, tuple(g for g in groups if i in g.inputs), i in cell.input_names)
                     for i in inputs)
    return Plan(groups, products)


def _group(derivation: Derivation, index: int, stages: tuple[Stage, ...]) -> Group:
    consumer = {s.name: _sole_consumer(derivation, s.name) for s in stages}
    kinds = list(dict.fromkeys(c.kind for c in consumer.values() if c is not None))
    ordered = sorted(stages, key=lambda s: kinds.index(consumer[s.name].kind)
                     if consumer[s.name] is not None else len(kinds))
    blocks, offset = [], sp.Integer(0)
    for kind in kinds:
        members = [s for s in ordered if consumer[s.name] is not None
                   and consumer[s.name].kind is kind]
        width = sum((sp.Symbol(s.size) for s in members), sp.Integer(0))
        blocks.append(Block(tuple(s.name for s in members),
                            tuple(consumer[s.name].name for s in members),
                            code(offset), code(offset + width), tuple(s.size for s in members)))
        offset += width
    return Group(index, tuple(ordered), stages[0].inputs, tuple(blocks))


def _sole_consumer(derivation: Derivation, name: str) -> Stage | None:
    """The one-input stage that is the only reader of `name`, if it can run as part of a block:
    its output is no state and its local derivative reads nothing but its own output."""
    cell = derivation.cell
    readers = [s for s in cell.stages if name in s.inputs]
    if len(readers) != 1 or name in cell.state_names or name == cell.output:
        return None
    stage = readers[0]
    if stage.kind in (Kind.AFFINE, Kind.SOFTMAX) or stage.inputs != (name,):
        return None
    if stage.name in cell.state_names or stage.name == cell.output:
        return None
    partial = next(p.expr for p in derivation.partials if p.stage == stage.name)
    if not partial.free_symbols <= {symbol(stage.name)}:
        return None
    return stage
