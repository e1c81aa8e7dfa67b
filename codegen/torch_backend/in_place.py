"""Gradient buffers written in place of the stacked one they are copied into (PyTorch only).

Contract: `in_place(prog) -> prog` with the same values.  Where the program copies the whole
of a per-step gradient buffer into some columns of another after the loop (`Copy` in
`backward_post`, e.g. the GRU's gate gradients into the gradient of its hoisted input
product), the first buffer becomes a view of those columns: the loop writes there directly
and the whole-sequence copy is gone.  Done only when nothing else writes those columns and
the copied buffer is copied nowhere else.  NumPy has the same views, but the JAX backend
has none, so this stays a PyTorch pass rather than part of the shared program.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from codegen.records import ALL_STEPS, Assign, Buffer, Copy, Gemm, Ref, View


def in_place(prog):
    buffers = {r.name: r for r in prog.backward_pre if isinstance(r, Buffer)}
    copies = [r for r in prog.backward_post if isinstance(r, Copy)]
    sources = [c.source.name for c in copies]
    aliased = {c.source.name: c.target for c in copies
               if _whole_copy(c, buffers) and sources.count(c.source.name) == 1
               and not _written(prog, c.target, c.source.name)}
    if not aliased:
        return prog
    pre = []
    for r in prog.backward_pre:
        if not (isinstance(r, Buffer) and r.name in aliased):
            pre.append(r)
        if isinstance(r, Buffer):
            pre += [View(name, target) for name, target in aliased.items() if target.name == r.name]
    post = [r for r in prog.backward_post if not (isinstance(r, Copy) and r.source.name in aliased)]
    return replace(prog, backward_pre=tuple(pre), backward_post=tuple(post))


def _whole_copy(c: Copy, buffers) -> bool:
    """All steps of the whole of a (steps, B, w) buffer into columns of another buffer."""
    src, dst = c.source, c.target
    if src.step != ALL_STEPS or dst.step != ALL_STEPS or src.flat or dst.flat or dst.columns is None:
        return False
    if src.name not in buffers or dst.name not in buffers or len(buffers[src.name].shape) != 3:
        return False
    lo, hi = _span(src.columns) if src.columns else (0, _expr(buffers[src.name].shape[2]))
    return sp.simplify(lo) == 0 and sp.simplify(hi - _expr(buffers[src.name].shape[2])) == 0


def _written(prog, target: Ref, source: str) -> bool:
    """Whether anything but the copy from `source` may write columns of `target`."""
    for r in (*prog.backward_loop, *prog.backward_post):
        out = r.target if isinstance(r, (Assign, Copy)) else r.out if isinstance(r, Gemm) else None
        if isinstance(r, Copy) and r.source.name == source:
            continue
        if isinstance(out, Ref) and out.name == target.name and _overlap(out.columns, target.columns):
            return True
        if isinstance(out, str) and out == target.name:
            return True
    return False


def _overlap(a: str | None, b: str) -> bool:
    if a is None:
        return True
    (lo_a, hi_a), (lo_b, hi_b) = _span(a), _span(b)
    apart = sp.Or(sp.Le(hi_a - lo_b, 0), sp.Le(hi_b - lo_a, 0))
    return apart is not sp.true


def _span(columns: str):
    lo, hi = columns.split(":")
    return _expr(lo), _expr(hi)


def _expr(text: str):
    """Sizes in the code are positive integers: so they are here, for the comparisons."""
    e = sp.sympify(text)
    return e.xreplace({s: sp.Symbol(s.name, positive=True, integer=True) for s in e.free_symbols})
