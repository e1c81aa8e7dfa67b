"""Fewer NumPy calls on strided memory: a record whose target or operand is a column slice.

On the machine of the README's Speed section a ufunc call with a strided operand or output took
about 1.4-1.7 us more than the same call on contiguous arrays (numpy 2.4, 8x32: 2.0 vs 0.3 us);
a slice assignment of the same columns took 0.16-0.3 us.  So, for the NumPy module only:

- an `Assign` into columns of a stacked buffer (no scratch of its own) is evaluated whole, its
  temporaries contiguous, and stored by one slice assignment: `d_A[:, 2*H:3*H] = d_a*r`; one
  with a scratch whose target is contiguous after all (the whole width) writes the target
  directly, without the scratch's copy (`inplace.assign_via`);
- an `Add` of a stacked bias's columns whose other entries are all zeros (the stacking put
  zeros there) adds the whole bias to the whole buffer: adding zeros changes no other column.

Contract: `strided_predicate(records, layout)` says whether an Assign's one operand is spelled as
strided memory; `whole_slices(records, widths, zero_columns, layout) -> list` rewrites records as
above, with the same effect on every buffer.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from codegen.numpy_backend.spell import ref_code
from codegen.records import Add, Assign, Buffer, Ref, View

__all__ = ["widths_of", "strided_predicate", "whole_slices", "zero_columns"]


def widths_of(records, known=None) -> dict:
    """The last axis of every buffer the records allocate (or `known` names), and of every view
    of a whole step."""
    widths = dict(known or {}) | {r.name: r.shape[-1] for r in records if isinstance(r, Buffer)}
    for r in records:
        if isinstance(r, View) and r.ref.columns is None and r.ref.name in widths:
            widths.setdefault(r.name, widths[r.ref.name])
    return widths


def _short(ref: Ref, widths) -> bool:
    return ref.columns is not None and ref.columns != f"0:{widths.get(ref.name)}"


def strided_predicate(widths, layout):
    """Whether an Assign's one operand is spelled as strided memory: columns short of its buffer's
    width, or the whole buffer seen gate by gate (a block target stored gate by gate)."""
    def strided(r) -> bool:
        short = _short(r.operands[0][1], widths)
        return short or bool(isinstance(r.target, Ref) and layout.of(r.target.name))
    return strided


def zero_columns(stacking) -> dict:
    """For each stacked bias, the column slices (as code) that hold a parameter, not zeros."""
    found = {}
    for s in stacking:
        start, parts = sp.Integer(0), []
        for name, size in s.parts:
            stop = start + sp.sympify(size)
            if name is not None:
                parts.append((start, stop))
            start = stop
        found[s.name] = (parts, start)
    return found


def whole_slices(records, widths, stacks, layout) -> list:
    out = []
    for r in records:
        if isinstance(r, Assign) and isinstance(r.target, Ref) and r.scratch is None \
                and r.target.step is None and _short(r.target, widths) and not r.expr.is_Symbol:
            r = replace(r, target=ref_code(r.target, layout))
        elif isinstance(r, Assign) and r.scratch and isinstance(r.target, Ref) \
                and not _short(r.target, widths) and not layout.of(r.scratch):
            r = replace(r, scratch=None)   # contiguous target: no scratch, no copy
        elif isinstance(r, Add) and _bias_columns_only(r, widths, stacks):
            r = Add(replace(r.target, columns=None), replace(r.source, columns=None))
        out.append(r)
    return out


def _bias_columns_only(r: Add, widths, stacks) -> bool:
    """r adds columns of a stacked bias, as wide as its target, whose only nonzero entries they are."""
    if not r.source.vector or r.source.columns is None or r.source.name not in stacks \
            or r.target.columns != r.source.columns or r.target.step is not None:
        return False
    parts, width = stacks[r.source.name]
    if sp.simplify(sp.sympify(widths.get(r.target.name, "0")) - width) != 0:
        return False
    lo, hi = (sp.sympify(c) for c in r.source.columns.split(":"))
    return all(sp.simplify(a - lo) >= 0 and sp.simplify(hi - b) >= 0 for a, b in parts)
