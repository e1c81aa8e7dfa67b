"""Parameter-gradient sums of the backward loop done once after it, over every step.

Contract: `reduce_after(program, sizes) -> Program` with the same meaning.  A parameter
read elementwise (a bias, a layer-normalisation gain, a peephole) has a gradient that is a
sum over steps and batch rows of a product of adjoints and forward values, e.g.
`d_gamma_c += (d_y_c*r_c*(c - mu_c)).sum(dim=0)` every step.  Its forward values are
stored for every step already; its adjoints are stored too, written straight into a
buffer of every step (`d_y_c_seq[t]`, no extra operation) instead of a fresh tensor, and
the sum is taken once after the loop over all steps (`Reduce(..., steps=True)`).

This is for backends where each call in the loop has a fixed cost that dominates small
operations (eager PyTorch): a step loses every such sum (several calls each), the backward
pass holds one (steps, B, w) buffer per adjoint read.  A sum whose adjoint is not a fresh
value of the loop (a view of a buffer written in place) stays in the loop.  Nothing is
derived here: the summed expressions are the derivation's own.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from codegen.program_recompute import all_steps
from codegen.records import Assign, Buffer, Program, Reduce, Ref, View, prune_views, reads

__all__ = ["reduce_after"]


def reduce_after(prog: Program, sizes: dict) -> Program:
    loop = list(prog.backward_loop)
    alias = _aliases(loop)
    fresh = {r.target for r in loop if isinstance(r, Assign) and isinstance(r.target, str)
             and not r.expr.is_Symbol}
    views = {r.name: r for r in loop if isinstance(r, View)}
    written = {r.target if isinstance(r.target, str) else r.target.name for r in loop if isinstance(r, Assign)}
    moved, roots = [], {}
    for r in loop:
        if isinstance(r, Reduce) and not isinstance(r.source, Ref):
            found = {s.name for s in r.source.free_symbols}
            adjoints = {n: _root(n, alias) for n in found if n in alias or n in fresh}
            if all(root in fresh for root in adjoints.values()) and \
                    all(n in adjoints or _every_step(n, views) or n not in written for n in found):
                moved.append((r, adjoints))
                roots.update({root: sizes[root[2:]] for root in adjoints.values()})
    if not moved:
        return prog
    body = []
    for r in loop:
        if any(r is m for m, _ in moved):
            continue
        if isinstance(r, Assign) and r.target in roots:   # the adjoint written into its step's row
            body += [replace(r, target=Ref(f"{r.target}_seq", "t")), View(r.target, Ref(f"{r.target}_seq", "t"))]
        else:
            body.append(r)
    buffers = tuple(Buffer(f"{name}_seq", ("steps", "B", size)) for name, size in roots.items())
    return replace(prog, backward_pre=prog.backward_pre + buffers, backward_loop=tuple(body),
                   backward_post=prog.backward_post + tuple(_after(moved, views, roots)))


def _every_step(name, views) -> bool:
    """A name the loop binds to (part of) one step of a buffer that holds every step."""
    while name in views:
        ref = views[name].ref
        if ref.step in ("t", "t + 1"):
            return True
        name = ref.name
    return False


def _aliases(loop) -> dict:
    """name -> the name it merely renames (`d_s_f = d_a_f`), for adjoints of the loop."""
    return {r.target: r.expr.name for r in loop
            if isinstance(r, Assign) and isinstance(r.target, str) and r.expr.is_Symbol}


def _root(name, alias):
    while name in alias:
        name = alias[name]
    return name


def _after(moved, views, roots):
    """Every step's forward values and adjoints bound to their names again, then the sums."""
    sums = [Reduce(r.target, r.source.xreplace({sp.Symbol(n, real=True): sp.Symbol(root, real=True)
                                                  for n, root in adjoints.items()}), r.label, steps=True)
            for r, adjoints in moved]
    rebound = [all_steps(v, set()) for v in views.values()]
    rebound += [View(name, Ref(f"{name}_seq")) for name in roots]
    records, before = rebound + sums, None
    while records != before:   # a view read only by a pruned view goes too
        records, before = prune_views(records), records
    return records
