"""What a stabiliser state contributes to the gradient, proved by SymPy from a cell's own stages.

A stabiliser (the sLSTM's m, Beck et al. 2024) is a state subtracted in the exponents of the
gates so that they do not overflow.  `stabiliser(cell, name)` writes one step of the cell out
symbolically, per unit (elementwise stages from their definitions), expanding the stages that
read the stabiliser or its previous value and keeping every other value a symbol; the
stabiliser's own value is left free, so every identity below holds for any value of it, the
maximum the cell computes included.  It proves, and returns for the document:

- each state the stabiliser rescales obeys  d s/d m = -s  (it carries the factor exp(-m));
- the output's paths through those states cancel:  sum_s (dh/ds)(ds/dm) = 0;
- exp(m) s is free of m: a recursion in exp(m_prev) s_prev with no stabiliser in it.

So the outputs depend on the stabilisers only through quantities that do not depend on them:
the total derivative of any loss of the outputs with respect to every m_t is zero.  A DeriveError
names the identity that fails for a state that is not a stabiliser.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.errors import DeriveError
from derive.rules import definition
from derive.stages import Cell, Kind
from derive.terms import value


@dataclass(frozen=True)
class Stabiliser:
    """The proved identities, in per-step value symbols (`c`, `c_prev`, `m`, ...).

    `rescaled`: (state, d state/d m), each equal to minus the state.  `paths`: (state,
    d output/d state, d state/d m), whose products sum to `total` (zero).  `unscaled`:
    (state, exp(m) state written without m)."""

    state: str
    output: str
    rescaled: tuple[tuple[str, sp.Expr], ...]
    paths: tuple[tuple[str, sp.Expr, sp.Expr], ...]
    total: sp.Expr
    unscaled: tuple[tuple[str, sp.Expr], ...]


def stabiliser(cell: Cell, name: str) -> Stabiliser:
    """Prove that the state `name` of `cell` is a stabiliser (see the module docstring)."""
    if name not in cell.state_names or name == cell.output:
        raise DeriveError(f"cell {cell.name!r}: {name!r} is not a state other than the output")
    m = value(name)
    step = _written_out(cell, {name, f"{name}_prev"}, keep={name})
    reads_m = [s for s in cell.state_names if s not in (name, cell.output) and step[s].has(m)]
    rescaled = tuple((s, sp.diff(step[s], m)) for s in reads_m)
    for s, d in rescaled:
        if sp.simplify(d + step[s]) != 0:
            raise DeriveError(f"cell {cell.name!r}: d{s}/d{name} is not -{s}; {name} does not rescale it")
    local = _written_out(cell, set(reads_m), keep=set())
    paths = tuple((s, sp.diff(local[cell.output], value(s)), -value(s)) for s in reads_m)
    total = sp.simplify(sum(dh * ds for _, dh, ds in paths))
    if total != 0 or sp.simplify(sp.diff(step[cell.output], m)) != 0:
        raise DeriveError(f"cell {cell.name!r}: the output depends on {name}")
    unscaled = tuple((s, sp.expand(sp.powsimp(sp.expand(sp.exp(m) * step[s])))) for s in reads_m)
    for s, expr in unscaled:
        if expr.has(m):
            raise DeriveError(f"cell {cell.name!r}: exp({name}) {s} still depends on {name}")
    return Stabiliser(name, cell.output, rescaled, paths, total, unscaled)


def _written_out(cell: Cell, sources: set[str], keep: set[str]) -> dict[str, sp.Expr]:
    """Every value of one step: the elementwise stages that read `sources` (directly or through
    other such stages) from their definitions, all other values (and `keep`) as symbols."""
    values, reading = {}, set(sources)
    for stage in cell.stages:
        if stage.name in keep or not reading & set(stage.inputs) or stage.kind is Kind.AFFINE:
            values[stage.name] = value(stage.name)
            continue
        d = definition(stage.kind)
        args = {a: values.get(x, value(x)) for a, x in zip(d.args, stage.inputs)}
        values[stage.name] = d.expr.subs(args, simultaneous=True)
        reading.add(stage.name)
    return values
