"""One tanh over a whole stacked pre-activation buffer instead of one per block (NumPy only).

In the LSTM's step the product's buffer A_h_prev (B, 4H) feeds two blocks, tanh(a/2) of the
gates f, i, o (the sigmoid, its 1/2 folded into the weights' copies) and tanh(a) of g.  Each
block's tanh reads a column slice of the buffer, and NumPy's vectorised tanh runs only on
contiguous arrays: on the machine of the README's Speed section tanh of the (8, 96) columns
into the gate-by-gate block took 3.9 us, tanh of the whole (8, 128) buffer in place 0.7 us
(16x128 rows: 5.7 + 4.1 us for the two blocks, 3.3 us for the whole).  So when every column
of the buffer is read only by blocks that take tanh of it, the buffer's tanh is taken once,
in place, and each block's record then reads tanh values: `tanh(operand)` becomes a copy of
the columns, `tanh(operand)/2 + 1/2` that copy and then `Z/2 + 1/2` in place in the block's own
contiguous buffer.  Values and labels are unchanged; the records of other buffers are left as they are.
Where no block's tanh reads strided memory (one block reading the whole buffer, stored as it
is) nothing changes: the fused form would only add a copy.

Contract: `whole_tanh(records, strided) -> list` of records with the same effect on every
buffer but the fused pre-activation buffers (which end up holding tanh of their sums);
`strided(record)` says whether an `Assign`'s operand, as the backend spells it, is strided.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from codegen.records import Add, Assign, Gemm, Ref, reads

__all__ = ["whole_tanh"]


def whole_tanh(records, strided) -> list:
    records = list(records)
    for n, r in enumerate(records):
        if isinstance(r, Gemm) and not r.accumulate and r.out.columns is None and r.out.step is None:
            records = _fuse(records, n, r.out.name, strided)
    return records


def _fuse(records, at, name, strided):
    """The records with `name`'s blocks reading one tanh of it, when that is all they read of it."""
    blocks, first = [], None
    writes = [n for n, r in enumerate(records) if n > at and isinstance(r, Add) and r.target.name == name]
    start = max(writes, default=at) + 1   # the tanh goes after the sum's last term; before it, as it was
    for n, r in enumerate(records[start:], start):
        if name not in reads(r):
            continue
        inner = _inner(r, name)
        if inner is None:
            return records
        first = n if first is None else first
        blocks.append((n, inner))
    if not any(strided(records[n]) for n, _ in blocks):
        return records
    labels = " ".join(records[n].label for n, _ in blocks)
    folded = any(records[n].fold is not None for n, _ in blocks)
    note = " (the factor 1/2 inside tanh is in the weights' copies)" if folded else ""
    tanh = Assign(Ref(name), sp.tanh(sp.Symbol("operand", real=True)),
                  f"{labels}: tanh of the whole buffer once, contiguous{note}",
                  operands=(("operand", Ref(name)),))
    out = [[r] for r in records]
    for n, inner in blocks:
        out[n] = _block(replace(records[n], expr=inner, fold=None), strided)
    return [r for rs in out[:first] for r in rs] + [tanh] + [r for rs in out[first:] for r in rs]


def _block(r, strided):
    """A block's record reading tanh values; one that does more than copy them, from strided
    columns into a buffer of its own, copies them first and works in place (a ufunc call with a
    strided operand cost about 1.7 us more than the copy, see `inplace.assign_via`)."""
    name = r.operands[0][0]
    if r.expr == sp.Symbol(name, real=True) or not isinstance(r.target, Ref) \
            or r.target.columns is not None or not strided(r):
        return [r]
    own = sp.Symbol(r.target.name, real=True)
    return [replace(r, expr=sp.Symbol(name, real=True)),
            replace(r, expr=r.expr.xreplace({sp.Symbol(name, real=True): own}), label="",
                    operands=((r.target.name, r.target),))]


def _inner(r, name):
    """r's expression in tanh(operand) as one symbol (the fold applied), or None when r reads
    `name` otherwise: not an Assign of one operand of it, or the operand outside a tanh."""
    if not isinstance(r, Assign) or len(r.operands) != 1 or r.operands[0][1].name != name \
            or r.operands[0][1].step is not None:
        return None
    symbol = sp.Symbol(r.operands[0][0], real=True)
    expr = r.expr if r.fold is None else r.expr.xreplace({symbol: symbol / r.fold})
    if name in {s.name for s in expr.free_symbols}:
        return None
    hidden = expr.xreplace({sp.tanh(symbol): sp.Symbol("_fused", real=True)})
    if symbol in hidden.free_symbols:
        return None
    return hidden.xreplace({sp.Symbol("_fused", real=True): symbol})
