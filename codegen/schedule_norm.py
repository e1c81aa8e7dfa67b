"""Layer norms over column blocks of one stacked product: which values are stored stacked.

Contract: `families(derivation, plan)` lists, per *seed*, the families of values stored side
by side, and `Stacks` reads equations on them.  A seed is a mean stage (`Kind.MEAN`) whose
inputs are G >= 2 members of one group, of one size, side by side in order in the group's
home product (a layer norm of the stacked gate terms W x: zx_f, zx_i, zx_g, zx_o).  A
*family* is the seed's members, or G stages of one kind whose stage k reads member k of the
seed where stage 1 reads member 1, block k of a packed parameter where stage 1 reads block
1, and otherwise the same columns (the squared deviations e_k, the normalised outputs y_k).
A family is stored as one stacked value named Z_ and its members' common prefix (`Z_zx`,
`Z_e_zx`, `Z_yx`; the gains' `Z_gamma_x`).  A mean over a whole family, and what is computed from such
means alone (the inverse standard deviation), is a *column*: one value per batch row, which
broadcasts against the stacked value.  Equations are read, never derived, here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import sympy as sp

from codegen.records import BlockSum
from codegen.schedule import Plan, code
from derive.stages import Kind
from derive.terms import RowMean, adjoint, value

__all__ = ["Family", "Stacks", "families", "columns"]


@dataclass(frozen=True)
class Family:
    """G values stored side by side as `name`: member k at columns `columns(k)`."""

    name: str
    members: tuple[str, ...]
    size: str                      # each member's size symbol
    param: bool = False            # blocks of a parameter (stacked once, before the loop)
    seed: bool = False             # a mean stage's inputs: columns of a product

    @property
    def blocks(self) -> tuple[int, str]:
        """(G, member size): families of the same blocks are read together."""
        return len(self.members), self.size

    @property
    def width(self) -> str:
        return code(len(self.members) * sp.Symbol(self.size))

    def columns(self, k: int) -> str:
        n = sp.Symbol(self.size)
        return f"{code(k * n)}:{code((k + 1) * n)}"


def families(derivation, plan: Plan) -> tuple[Family, ...]:
    """The seeds' families, then every family reading them, in stage order."""
    cell = derivation.cell
    taken = {b.out for g in plan.groups for b in g.blocks}   # the block buffers, Z_f_i_o
    seeds = [_family(stage.inputs, cell.sizes()[stage.inputs[0]], taken, seed=True)
             for stage in cell.stages if stage.kind is Kind.MEAN and _is_seed(plan, cell, stage.inputs)]
    seeds = [f for f in seeds if f is not None]
    return tuple(seeds + _readers(cell, seeds, taken)) if seeds else ()


def _is_seed(plan: Plan, cell, inputs) -> bool:
    g = plan.group_of(inputs[0])
    if len(inputs) < 2 or g is None or any(plan.group_of(z) is not g or plan.block_of(z) for z in inputs):
        return False
    sizes = {cell.sizes()[z] for z in inputs}
    home = plan.home(g)
    starts = [home.start(g) + g.offset(z) for z in inputs]
    size = sp.Symbol(sizes.pop()) if len(sizes) == 1 else None
    return size is not None and all(s - starts[0] == k * size for k, s in enumerate(starts))


def _family(members, size, taken, param=False, seed=False) -> Family | None:
    """A family named Z_ and its members' common prefix (a generated name, reserved: see
    `catalogue.spec.reserved`), if that name is free."""
    prefix = os.path.commonprefix(list(members)).rstrip("_")
    name = f"Z_{prefix}"
    if not prefix or name in taken:
        return None
    taken.add(name)
    return Family(name, tuple(members), size, param, seed)


def _readers(cell, seeds, taken) -> list[Family]:
    """Families of stages reading families of the same blocks blockwise, in stage order (their
    other inputs columns: `columns`), and the parameter families they read (one per block)."""
    found = []
    for stage in cell.stages:
        fams = [*seeds, *found]
        first = {f.members[0]: f for f in fams if not f.param}
        read = {first[n].blocks for n in stage.inputs if n in first}
        if stage.kind in (Kind.AFFINE, Kind.MEAN, Kind.SOFTMAX) or len(read) != 1:
            continue
        (blocks, size), = read
        shared = {n for n in stage.inputs if n not in first and n not in cell.vector_param_names}
        stages = [_block_stage(cell, stage, k, first) for k in range(blocks)]
        if not shared <= columns(cell, fams) or None in stages or stages[0] is not stage \
                or len({s.name for s in stages}) != blocks:
            continue
        if any(s.name in cell.state_names or s.name == cell.output for s in stages):
            continue   # a state or the output is stored as it is
        params = [tuple(s.inputs[j] for s in stages) for j, n in enumerate(stage.inputs)
                  if n in cell.vector_param_names]
        new = [_param_family(cell, p, size, taken, found) for p in params]
        if None in new:
            continue
        found += [f for f in new if f not in found]
        new = _family([s.name for s in stages], size, taken)
        if new is not None:
            found.append(new)
    return found


def _block_stage(cell, stage, k, first):
    """The stage computing block k the way `stage` computes block 0: the same kind and
    constant, block k of each family it reads, some vector parameter where it reads one, the
    same value otherwise; None unless there is exactly one."""
    def fits(s):
        return s.kind is stage.kind and s.constant == stage.constant and len(s.inputs) == len(stage.inputs) \
            and all(b == first[a].members[k] if a in first else
                    b in cell.vector_param_names if a in cell.vector_param_names else a == b
                    for a, b in zip(stage.inputs, s.inputs))
    found = [s for s in cell.stages if fits(s)]
    return found[0] if len(found) == 1 else None


def _param_family(cell, members, size, taken, found) -> Family | None:
    """Vector parameters read one per block (the gains of a norm; the gates' biases)."""
    sizes = dict(cell.vector_params)
    if len(set(members)) != len(members) or any(sizes[m] != size for m in members):
        return None
    known = next((f for f in found if f.members == members), None)
    return known or _family(members, size, taken, param=True)


def columns(cell, fams) -> set[str]:
    """Values that are one column per batch row: a mean over a whole family, and elementwise
    stages of columns alone (its inverse standard deviation)."""
    whole = {f.members for f in fams}
    found = set()
    for stage in cell.stages:
        if stage.kind is Kind.MEAN and stage.inputs in whole or \
                stage.kind.elementwise and stage.inputs and set(stage.inputs) <= found:
            found.add(stage.name)
    return found


@dataclass(frozen=True)
class Stacks:
    """What a rewriting reads: the families and, per member symbol, its stacked symbol."""

    fams: tuple[Family, ...]
    sym: dict          # member value or adjoint symbol -> (its blocks, k, stacked symbol)
    columns: frozenset

    @classmethod
    def of(cls, cell, fams):
        sym = {}
        for f in fams:
            for k, m in enumerate(f.members):
                sym[value(m)] = (f.blocks, k, value(f.name))
                sym[adjoint(m)] = (f.blocks, k, adjoint(f.name))
        return cls(tuple(fams), sym, frozenset(columns(cell, fams)))

    def owner(self, name):
        """(family, k) of a member value, or None."""
        return next(((f, f.members.index(name)) for f in self.fams if name in f.members), None)

    def template(self, expr):
        """((blocks, k), expr with member k's symbols read stacked), or (None, None) when expr
        reads members of no block or of several, or its stacked form would not broadcast."""
        hits = {self.sym[s][:2] for s in expr.free_symbols if s in self.sym}
        if len(hits) != 1:
            return None, None
        out = expr.xreplace({s: self.sym[s][2] for s in expr.free_symbols if s in self.sym})
        return (hits.pop(), out) if self._broadcasts(out) else (None, None)

    def _broadcasts(self, expr) -> bool:
        """Every value read outside a row mean or block sum is stacked, a column or a number."""
        stacked = {v for _, _, v in self.sym.values()}
        outer = expr.xreplace({node: sp.Integer(1) for node in expr.atoms(RowMean, BlockSum)})
        return all(s in stacked or s.name in self.columns for s in outer.free_symbols)

    def sums(self, expr):
        """expr with every complete set of G terms, one per block, of one template summed as one
        `BlockSum` of the template."""
        if not isinstance(expr, sp.Add):
            return expr
        groups, rest = {}, []
        for term in expr.args:
            key, t = self.template(term)
            if key is None:
                rest.append(term)
            else:
                groups.setdefault((key[0], t), []).append((key[1], term))
        blocks = {}
        for (key, t), hits in groups.items():
            if sorted(k for k, _ in hits) == list(range(key[0])):
                blocks[key] = blocks.get(key, sp.Integer(0)) + t
            else:
                rest += [term for _, term in hits]
        return sp.Add(*rest, *(BlockSum(t, key[0], sp.Symbol(key[1])) for key, t in blocks.items()))

    def blockwise(self, cell, f: Family) -> bool:
        """Whether a stage outside the families reads a member of f by itself (a normalised
        gate term read by its gate's sum), other than a mean over the whole family."""
        inside = {m for g in self.fams for m in g.members}
        return any(m in s.inputs for s in cell.stages if s.name not in inside
                   and not (s.kind is Kind.MEAN and s.inputs == f.members) for m in f.members)

    def common(self, exprs):
        """The one template of every member's expression, in order, or None.  Expressions that
        read no member (the same value for every block, a mean's share) are their own template."""
        if len(set(exprs)) == 1 and not any(s in self.sym for s in exprs[0].free_symbols):
            return exprs[0] if self._broadcasts(exprs[0]) else None
        found = [self.template(e) for e in exprs]
        keys = [k for k, _ in found]
        if any(k is None for k in keys) or [k for _, k in keys] != list(range(len(exprs))) or \
                len({t for _, t in found}) != 1:
            return None
        return found[0][1]
