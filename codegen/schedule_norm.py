"""Layer norms over column blocks of one stacked product: which values are stored stacked.

Contract: `families(derivation, plan)` lists, per *seed*, the families of values stored side
by side, and `Stacks` reads equations on them.  A seed is a mean stage (`Kind.MEAN`) whose
inputs are G >= 2 members of one group, of one size, side by side in order in the group's
home product (a layer norm of the stacked gate terms W x: zx_f, zx_i, zx_g, zx_o).  A
*family* is the seed's members, or G stages of one kind whose stage k reads member k of the
seed where stage 1 reads member 1, block k of a packed parameter where stage 1 reads block
1, and otherwise the same columns (the squared deviations e_k, the normalised outputs y_k).
A family is stored as one stacked value named by its members' common prefix (`zx`, `e_zx`,
`yx`; the gains' `gamma_x`).  A mean over a whole family, and what is computed from such
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

    @property
    def width(self) -> str:
        return code(len(self.members) * sp.Symbol(self.size))

    def columns(self, k: int) -> str:
        n = sp.Symbol(self.size)
        return f"{code(k * n)}:{code((k + 1) * n)}"


def families(derivation, plan: Plan) -> list[tuple[Family, ...]]:
    """Per seed: its members' family, then every family reading it, in stage order."""
    cell = derivation.cell
    taken = {s.name for s in cell.stages} | {n for n, _ in cell.params()} | set(cell.input_names)
    found = []
    for stage in cell.stages:
        if stage.kind is Kind.MEAN and _is_seed(plan, cell, stage.inputs):
            seed = _family(stage.inputs, cell.sizes()[stage.inputs[0]], taken)
            if seed is not None:
                found.append((seed, *_readers(cell, seed, taken)))
    return found


def _is_seed(plan: Plan, cell, inputs) -> bool:
    g = plan.group_of(inputs[0])
    if len(inputs) < 2 or g is None or any(plan.group_of(z) is not g or plan.block_of(z) for z in inputs):
        return False
    sizes = {cell.sizes()[z] for z in inputs}
    home = plan.home(g)
    starts = [home.start(g) + g.offset(z) for z in inputs]
    size = sp.Symbol(sizes.pop()) if len(sizes) == 1 else None
    return size is not None and all(s - starts[0] == k * size for k, s in enumerate(starts))


def _family(members, size, taken, param=False) -> Family | None:
    """A family named by its members' common prefix, if that name is free."""
    name = os.path.commonprefix(list(members)).rstrip("_")
    if not name or name in taken or name in members:
        return None
    taken.add(name)
    return Family(name, tuple(members), size, param)


def _readers(cell, seed: Family, taken) -> list[Family]:
    """Families of stages reading the seed blockwise (their other inputs columns: `columns`),
    and the parameter families they read."""
    found = []
    packed = {blocks[0]: (public, blocks) for public, blocks in cell.packed}
    for stage in cell.stages:
        if seed.members[0] not in stage.inputs or stage.kind in (Kind.AFFINE, Kind.MEAN):
            continue
        shared = {n for n in stage.inputs if n != seed.members[0] and n not in packed}
        if not shared <= columns(cell, [seed, *found]):
            continue
        pattern = []   # per input: the members it takes blockwise, or None (shared)
        for name in stage.inputs:
            if name == seed.members[0]:
                pattern.append(seed.members)
            elif name in packed and len(packed[name][1]) == len(seed.members):
                pattern.append(packed[name][1])
            else:
                pattern.append(None)
        stages = [_match(cell, stage, [tuple(p[k] if p else n for p, n in zip(pattern, stage.inputs))])
                  for k in range(len(seed.members))]
        if any(s is None for s in stages) or len({s.name for s in stages}) != len(stages):
            continue
        new = _family([s.name for s in stages], seed.size, taken)
        if new is None:
            continue
        for p, n in zip(pattern, stage.inputs):
            if p is not None and p is not seed.members and not any(f.members == p for f in found):
                found.append(Family(packed[n][0], p, seed.size, param=True))
        found.append(new)
    return found


def _match(cell, first, inputs):
    return next((s for s in cell.stages if s.kind is first.kind and s.inputs == inputs[0]
                 and s.constant == first.constant), None)


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
    seed_of: dict      # family name -> index of its seed
    size: dict         # seed index -> (G, member size)
    sym: dict          # member value or adjoint symbol -> (seed index, k, stacked symbol)
    columns: frozenset

    @classmethod
    def of(cls, cell, found):
        fams = tuple(f for group in found for f in group)
        seed_of = {f.name: n for n, group in enumerate(found) for f in group}
        size = {n: (len(group[0].members), group[0].size) for n, group in enumerate(found)}
        sym = {}
        for f in fams:
            for k, m in enumerate(f.members):
                sym[value(m)] = (seed_of[f.name], k, value(f.name))
                sym[adjoint(m)] = (seed_of[f.name], k, adjoint(f.name))
        return cls(fams, seed_of, size, sym, frozenset(columns(cell, fams)))

    def owner(self, name):
        """(family, k) of a member value, or None."""
        return next(((f, f.members.index(name)) for f in self.fams if name in f.members), None)

    def template(self, expr):
        """((seed, k), expr with member k's symbols read stacked), or (None, None) when expr
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
        for (seed, t), hits in groups.items():
            if sorted(k for k, _ in hits) == list(range(self.size[seed][0])):
                blocks[seed] = blocks.get(seed, sp.Integer(0)) + t
            else:
                rest += [term for _, term in hits]
        return sp.Add(*rest, *(BlockSum(t, self.size[seed][0], sp.Symbol(self.size[seed][1]))
                               for seed, t in blocks.items()))

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
