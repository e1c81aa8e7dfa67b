"""A hoisted product's columns added to the whole row of a step's buffer (NumPy only).

The GRU with the reset gate after the product adds the x terms of z and r to the h terms,
`A_h_prev[:, 0:2*H] += A_x[t, :, 0:2*H]`, but keeps n's h terms apart (a_nh, multiplied by r).
Both operands are column slices, and a ufunc call on strided memory cost ~1.7 us more than on
contiguous arrays here (see `strided.py`); the block's tanh then reads strided columns too.  When
every later record reading the buffer's other columns can run before the add (they read only
those columns, or add a bias that is zero on the added columns, and nothing in between touches
what they read or write), they are moved before it and the add takes the whole row, contiguous:
the other columns then hold sums no one reads, and `whole_tanh` may take one tanh of the row.
Every value read is the same, bit for bit (x + 0 + s and x + s + 0 round alike).

Contract: `widen(records, widths, stacks) -> list`, the same effect on every value read.
"""
from __future__ import annotations

import sympy as sp

from codegen.records import Add, Assign, Copy, Gemm, Ref, View, reads

__all__ = ["widen"]


def widen(records, widths, stacks) -> list:
    records = list(records)
    for n, r in enumerate(records):
        if isinstance(r, Add) and r.target.columns is not None and r.target.step is None \
                and r.source.columns == r.target.columns and not r.source.vector \
                and _same(widths.get(r.target.name), widths.get(r.source.name)):
            records = _widen(records, n, widths, stacks)
    return records


def _widen(records, n, widths, stacks):
    add = records[n]
    name, cols = add.target.name, _span(add.target.columns)
    moved, kept = [], []
    for r in records[n + 1:]:
        outside = _outside(r, name, cols, stacks)
        if outside is None:
            return records
        if outside and not (_touches(r) & {t for k in kept for t in _touches(k)} - {name}):
            moved.append(r)
        elif outside:
            return records
        else:
            kept.append(r)
    if not moved:
        return records
    whole = Add(Ref(name), Ref(add.source.name, add.source.step))
    return records[:n] + moved + [whole] + kept


def _outside(r, name, cols, stacks):
    """True when r reads `name` only outside `cols` (or adds a bias zero on them), False when it
    does not read it or reads it only inside, None when it reads both or writes it otherwise."""
    if name not in reads(r):
        return False
    refs = _refs(r, name)
    if isinstance(r, Add) and r.target == Ref(name) and r.source.vector and r.source.columns is None:
        if r.source.name not in stacks:
            return None
        parts, _ = stacks[r.source.name]
        return True if all(_disjoint(p, cols) for p in parts) else None
    if not refs or any(ref.columns is None for ref in refs):
        return None
    spans = [_span(ref.columns) for ref in refs]
    if all(_within(s, cols) for s in spans):
        return None if isinstance(r, (Add, Copy)) and r.target.name == name else False
    return True if all(_disjoint(s, cols) for s in spans) else None


def _refs(r, name):
    found = []
    if isinstance(r, View):
        found = [r.ref]
    elif isinstance(r, Assign):
        found = [ref for _, ref in r.operands] + ([r.target] if isinstance(r.target, Ref) else [])
    elif isinstance(r, (Add, Copy)):
        found = [r.target, r.source]
    elif isinstance(r, Gemm):
        found = [r.a, r.b, r.out]
    return [ref for ref in found if ref.name == name]


def _touches(r) -> set:
    """The names r reads, writes or binds."""
    names = set(reads(r))
    for attr in ("target", "out", "name"):
        value = getattr(r, attr, None)
        names.add(value.name if isinstance(value, Ref) else value)
    return {x for x in names if isinstance(x, str)}


def _positive(expr):
    expr = sp.sympify(expr)
    return expr.xreplace({s: sp.Symbol(s.name, positive=True) for s in expr.free_symbols})


def _span(columns):
    lo, hi = columns.split(":")
    return _positive(lo), _positive(hi)


def _nonneg(expr) -> bool:
    return bool(sp.simplify(expr).is_nonnegative)


def _within(a, b) -> bool:
    return _nonneg(a[0] - b[0]) and _nonneg(b[1] - a[1])


def _disjoint(a, b) -> bool:
    a = tuple(_positive(x) for x in a)
    return _nonneg(b[0] - a[1]) or _nonneg(a[0] - b[1])


def _same(a, b) -> bool:
    return a is not None and b is not None and sp.simplify(_positive(a) - _positive(b)) == 0
