"""Where a PyTorch loop reads its buffers from: views made once before the loop, not per step.

Contract: `by_rows(records, fixed) -> (records, splits, views)`.  The records mean the same;
every part of a buffer the loop reads or writes is a name bound before the loop:
- a step of a per-step buffer (`h_seq[t]`) is a row of it, split once (`h_seq_rows =
  h_seq.unbind(0)`, then `h_seq_rows[t]`): a Python list index per step instead of a
  tensor indexing call;
- some columns of a step (`Z_f_i_o_seq[t][:, 0:H]`, the gate f) are a row of those columns
  of the whole buffer, split once the same way (`f_rows = Z_f_i_o_seq[:, :, 0:H].unbind(0)`);
- a run of gradient columns scaled by stored factors (`records.Scale`, repeat > 1) reads and
  writes rows of the buffers' columns shaped (steps, B, repeat, size) once (`RowsScale`), not
  reshaped each step;
- some columns of a buffer that lives across the loop (`A_h_prev[:, 0:3 * H]`, in `fixed`)
  are one view made before the loop.
`splits` lists (rows name, the tensor split), `views` lists (name, the view's code).
In eager PyTorch a slicing call costs about as much as a small arithmetic one, so this takes
several calls out of every step.  Nothing is computed differently.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from codegen.numpy_backend.spell import ref_code
from codegen.records import Add, Assign, Copy, Gemm, Reduce, Ref, Scale, View, prune_views

__all__ = ["by_rows", "RowsScale"]


@dataclass(frozen=True)
class RowsScale:
    """target (B, repeat, size) = base (B, size) broadcast over the repeat axis times factor
    (B, repeat, size): a `records.Scale` of several members, on rows split before the loop."""

    target: Ref
    base: str
    factor: Ref
    label: str = ""


STEPS = ("t", "t + 1")


def by_rows(records, fixed=frozenset()):
    records = _through_views(list(records))
    named = {_key(r.ref): r.name for r in records if isinstance(r, View)}
    splits, views = {}, {}

    def move(ref):
        if not isinstance(ref, Ref) or ref.flat is not None or ref.vector:
            return ref
        if ref.step in STEPS:
            source = ref.name if ref.columns is None else f"{ref.name}[:, :, {ref.columns}]"
            rows = f"{ref.name}_rows" if ref.columns is None else \
                f"{named.get(_key(replace(ref, step='t')), _slug(ref))}_rows"
            splits.setdefault(rows, source)
            return Ref(f"{rows}[{ref.step}]")
        if ref.step is None and ref.columns is not None and ref.name in fixed:
            name = named.get(_key(ref)) if named.get(_key(ref)) in fixed else None
            name = name or _slug(ref)
            views.setdefault(name, ref_code(ref))
            return Ref(name)
        return ref

    kept = prune_views([_moved(_scaled(r, splits), move) for r in records])
    used = set()

    def note(ref):
        if isinstance(ref, Ref):
            used.add(ref.name.split("[")[0])
        return ref
    for r in kept:
        _moved(r, note)
    return (kept, [(k, v) for k, v in splits.items() if k in used],
            [(k, v) for k, v in views.items() if k in used])


def _scaled(r, splits):
    """A `Scale` of a run of members as a `RowsScale` on rows of its buffers' columns shaped
    (steps, B, repeat, size), each split noted in `splits` once; any other record as it is."""
    if not isinstance(r, Scale) or r.repeat == 1:
        return r
    target, factor = _shaped(r.target, r, splits), _shaped(r.factor, r, splits)
    return r if target is None or factor is None else RowsScale(target, r.base, factor, r.label)


def _shaped(ref, r, splits):
    if ref.step not in STEPS or ref.flat is not None:
        return None
    columns = "" if ref.columns is None else f"[:, :, {ref.columns}]"
    rows = f"{_slug(ref) if ref.columns else ref.name}_{r.repeat}x_rows"
    splits.setdefault(rows, f"{ref.name}{columns}.unflatten(2, ({r.repeat}, {r.size}))")
    return Ref(f"{rows}[{ref.step}]")


def _through_views(records):
    """Refs to columns of a name bound to one step of a buffer, made refs to that step's columns."""
    step_of = {}
    out = []
    for r in records:
        r = _moved(r, lambda ref: _resolve(ref, step_of))
        if isinstance(r, View) and r.ref.step in STEPS and r.ref.flat is None:
            step_of[r.name] = r.ref
        elif isinstance(r, Assign) and isinstance(r.target, str):
            step_of.pop(r.target, None)    # rebound each step: not a view any more
        out.append(r)
    return out


def _resolve(ref, step_of):
    if not isinstance(ref, Ref) or ref.name not in step_of or ref.step is not None or ref.flat is not None:
        return ref
    base = step_of[ref.name]
    if ref.columns is not None and base.columns is not None:
        return ref     # columns of columns: left as they are
    return replace(base, columns=ref.columns if ref.columns is not None else base.columns)


def _key(ref: Ref):
    return (ref.name, ref.step, ref.columns)


def _slug(ref: Ref) -> str:
    """A name for some columns of a buffer: A_h_prev[:, 0:3 * H] -> A_h_prev_0_3H."""
    return f"{ref.name}_{re.sub(r'[^0-9A-Za-z]+', '_', ref.columns.replace(' * ', '').replace(':', '_'))}"


def _moved(r, move):
    if isinstance(r, View):
        return replace(r, ref=move(r.ref))
    if isinstance(r, Gemm):
        return replace(r, out=move(r.out), a=move(r.a), b=move(r.b))
    if isinstance(r, Assign):
        target = r.target if isinstance(r.target, str) else move(r.target)
        return replace(r, target=target, operands=tuple((n, move(f)) for n, f in r.operands))
    if isinstance(r, (Add, Copy)):
        return replace(r, target=move(r.target), source=move(r.source))
    if isinstance(r, Reduce):
        return replace(r, source=move(r.source))
    if isinstance(r, (Scale, RowsScale)):
        return replace(r, target=move(r.target), factor=move(r.factor))
    return r
