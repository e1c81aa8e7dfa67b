"""The forward pass of all steps at once, given every step's state (part of `codegen.program`).

Contract: `recompute(forward_pre, forward_loop, cached, states) -> list of records` that,
run once with the state buffers (`h_seq`, `c_seq`, ... with their n + 1 rows) filled,
write every *other* cached buffer (`Z_f_i_o_seq`, `k_seq`, ...) for all steps.

Why it is possible: a step reads only its input and the state before it, so once the
states of all steps are known the steps no longer depend on each other, and one step's
records run unchanged on all steps at once (steps become a leading batch axis: a step's
(B, w) scratch becomes (steps, B, w), `[t]` becomes every row, `h_seq[t]` the rows before
the last, `h_seq[t + 1]` the rows after the first).  Records that write a state are
dropped (the states are given), as is every record none of the wanted buffers depends
on.  A backend that saves only the states for its backward pass and calls this first
keeps between forward and backward the states alone, at the price of one forward pass
done with whole-sequence products.
"""
from __future__ import annotations

from dataclasses import replace

from codegen.records import ALL_STEPS, Add, Assign, Buffer, Copy, Gemm, Ref, View, Zeros, reads

__all__ = ["recompute"]


def recompute(forward_pre, forward_loop, cached, states) -> list:
    """`states`: the state names (`h`, `c`); `cached`: (name, size, is_state) as in Program."""
    seqs = {f"{s}_seq" for s in states}
    scratch = {r.name for r in forward_pre if isinstance(r, Buffer) and r.shape[0] == "B"}
    moved = [all_steps(r, scratch) for r in (*forward_pre, *forward_loop)
             if _target(r) not in seqs]
    wanted = {f"{name}_seq" for name, _, is_state in cached if not is_state}
    return _live(moved, wanted)


def _target(record) -> str | None:
    """The buffer or name a record writes (a view binds its name)."""
    if isinstance(record, (Buffer, Zeros, View)):
        return record.name
    if isinstance(record, Gemm):
        return record.out.name
    if isinstance(record, Assign):
        return record.target if isinstance(record.target, str) else record.target.name
    if isinstance(record, (Add, Copy)):
        return record.target.name
    return None


def _ref(ref: Ref, scratch) -> Ref:
    """The same part of a buffer for every step at once."""
    if ref.step == "t":   # an index, not a bare name: a Copy into it must write, not rebind
        return replace(ref, step="0:steps")
    if ref.step == "t + 1":
        return replace(ref, step="1:")
    if ref.step is None and ref.flat is None and not ref.vector and \
            (ref.columns is not None or ref.name in scratch):
        return replace(ref, step=ALL_STEPS)   # a step's (B, w) value is now (steps, B, w)
    return ref


def all_steps(record, scratch):
    """The record for every step at once; `scratch`: the one-step buffers that gain a steps axis."""
    move = lambda ref: _ref(ref, scratch)   # noqa: E731
    if isinstance(record, Buffer) and record.name in scratch:
        return replace(record, shape=("steps", *record.shape))
    if isinstance(record, View):
        return replace(record, ref=move(record.ref))
    if isinstance(record, Gemm):
        return replace(record, out=move(record.out), a=move(record.a), b=move(record.b))
    if isinstance(record, Assign):
        target = record.target if isinstance(record.target, str) else move(record.target)
        return replace(record, target=target,
                       operands=tuple((name, move(ref)) for name, ref in record.operands))
    if isinstance(record, (Add, Copy)):
        return replace(record, target=move(record.target), source=move(record.source))
    return record


def _live(records, wanted) -> list:
    """The records the wanted buffers depend on.  A view makes its name and its buffer one
    value (writing through either writes both), so liveness is kept per such family."""
    family = {}

    def root(name):
        while family.get(name, name) != name:
            name = family[name]
        return name
    for r in records:
        if isinstance(r, View):
            family[root(r.name)] = root(r.ref.name)
    needed, kept = {root(n) for n in wanted}, []
    for r in reversed(records):
        if root(_target(r)) in needed:
            kept.append(r)
            needed |= {root(n) for n in reads(r)}
    return kept[::-1]
