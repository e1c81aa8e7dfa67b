"""Local-derivative factors of the backward loop computed for all steps before it.

Contract: `hoist(program) -> Program` with the same meaning.  In an adjoint such as
`d_c = d_k*(1 - k**2) + d_c_next` the factor `1 - k**2` reads forward values only, which
every step has already stored, so it need not wait for the loop: it is evaluated once for
all steps before the loop (`J_B3_seq = 1 - k_seq**2`, named after its equation) and the
loop reads its row (`d_c = d_k*J_B3 + d_c_next`).  Within each product the factors that
read only forward values are grouped; a group is hoisted when evaluating it costs at least
one operation (two or more factors, or one that is not a plain value).

This is for backends where each call in the loop has a fixed cost that dominates small
operations (eager PyTorch): it trades one pass over all steps, and memory for the factors
while the backward pass runs, for fewer calls per step.  Nothing is derived here: the
factors are the derivation's own sub-expressions, their product unchanged.
"""
from __future__ import annotations

import re
from dataclasses import replace

import sympy as sp

from codegen.program_recompute import all_steps
from codegen.records import Assign, Program, Ref, Softmax, View, prune_views
from derive.terms import WT, Carried, LossGrad, Outer, RowSum

__all__ = ["hoist"]

_OPAQUE = (WT, LossGrad, Carried, RowSum, Outer, Softmax)   # read adjoints or whole rows


def hoist(prog: Program) -> Program:
    loop = prog.backward_loop
    forward = {r.name for r in loop if isinstance(r, View) and not r.name.startswith("d_")}
    before, views, body = [], [], []
    for r in loop:
        if not isinstance(r, Assign):
            body.append(r)
            continue
        found: dict = {}
        expr = _rewrite(r.expr, forward, found, _stem(r.label, len(before)))
        for factor, name in found.items():
            before.append(Assign(f"{name}_seq", factor, r.label))
            views.append(View(name.name, Ref(f"{name}_seq", "t")))
        body.append(replace(r, expr=expr))
    if not before:
        return prog
    steps = [all_steps(r, set()) for r in loop if isinstance(r, View) and r.name in forward]
    return replace(prog, backward_pre=prog.backward_pre + tuple(prune_views(steps + before)),
                   backward_loop=tuple(views + body))


def _stem(label: str, n: int) -> str:
    """J_B3 for an equation labelled (B3); numbered when it has no label."""
    found = re.search(r"\((\w+)\)", label or "")
    return f"J_{found.group(1)}" if found else f"J_{n + 1}"


def _forward_only(expr, forward) -> bool:
    return not expr.is_Number and not expr.atoms(*_OPAQUE) and \
        all(s.name in forward for s in expr.free_symbols)


def _rewrite(expr, forward, found: dict, stem: str):
    """expr with each product's forward-only factors (when they cost an operation) replaced
    by a symbol; `found` maps each hoisted factor to its symbol."""
    if expr.is_Atom or isinstance(expr, _OPAQUE):
        return expr
    if isinstance(expr, sp.Mul):
        mine = [a for a in expr.args if _forward_only(a, forward)]
        if len(mine) >= 2 or (mine and not mine[0].is_Symbol):
            factor = sp.Mul(*mine)
            if factor not in found:
                found[factor] = sp.Symbol(stem if not found else f"{stem}_{len(found) + 1}", real=True)
            rest = [_rewrite(a, forward, found, stem) for a in expr.args if a not in mine]
            return sp.Mul(found[factor], *rest)
    return expr.func(*(_rewrite(a, forward, found, stem) for a in expr.args))
