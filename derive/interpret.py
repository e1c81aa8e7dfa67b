"""Run a `Derivation` directly, step by step, on concrete arrays (no code generation).

This is the reference meaning of a derivation: the forward stages in order, then the
backward equations in order, exactly as `print(derivation)` lists them.  It works on
float arrays and on object arrays of mpmath numbers (the symbolic self-check evaluates
it at rational points with 50 significant digits).  Values are (B, n) batch-row arrays,
so an affine stage is `x @ W.T + b` and its input adjoint `d_a @ W`.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp

from derive.derivation import Derivation, TermKind
from derive.stages import Kind


def run(derivation: Derivation, params, xs, state0, dhs, dstateT, module="numpy"):
    """Forward and backward over a sequence; returns (hs, stateT, grads, dxs, dstate0, trace).

    `trace[t][name]` holds every forward value and every adjoint `d_name` at step t.
    """
    cell = derivation.cell
    state = dict(state0)
    trace, hs = [], []
    for x in xs:
        values = {cell.input_names[0]: x, **{f"{s}_prev": state[s] for s in cell.state_names}}
        for eq in derivation.forward:
            values[eq.stage.name] = _stage_value(eq, values, params, module)
        state = {s: values[s] for s in cell.state_names}
        hs.append(values[cell.output])
        trace.append(values)
    carry = dict(dstateT)
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    for t in reversed(range(len(xs))):
        values = trace[t]
        for adj in derivation.adjoints:
            values[f"d_{adj.target}"] = _adjoint(adj, values, params, carry, dhs[t], module)
        carry = {s: values[f"d_{s}_prev"] for s in cell.state_names}
        for g in derivation.param_grads:
            delta = values[f"d_{g.stage}"]
            grads[g.param] = grads[g.param] + (delta.T @ values[g.input] if g.input
                                               else delta.sum(axis=0))
    dxs = np.stack([values[f"d_{cell.input_names[0]}"] for values in trace])
    return np.stack(hs), state, grads, dxs, carry, trace


def _stage_value(eq, values, params, module):
    stage = eq.stage
    if stage.kind is Kind.AFFINE:
        out = sum(values[x] @ params[w].T for w, x in zip(stage.weights, stage.inputs))
        return out + params[stage.bias] if stage.bias else out
    return _elementwise(eq.numeric, values, module)


def _adjoint(adj, values, params, carry, loss_grad, module):
    total = 0
    for term in adj.terms:
        if term.kind is TermKind.LOCAL:
            total = total + values[f"d_{term.source}"] * _elementwise(term.factor, values, module)
        elif term.kind is TermKind.WEIGHT:
            total = total + values[f"d_{term.source}"] @ params[term.weight]
        elif term.kind is TermKind.LOSS:
            total = total + loss_grad
        else:
            total = total + carry[adj.target]
    return total


def _elementwise(expr, values, module):
    names = tuple(sorted(str(s) for s in expr.free_symbols))
    if not names:
        return float(expr) if module == "numpy" else sp.Float(expr)
    fn = _compiled(expr, names, module)
    return fn(*(values[n] for n in names))


@lru_cache(maxsize=None)
def _compiled(expr, names, module):
    fn = sp.lambdify([sp.Symbol(n, real=True) for n in names], expr, module)
    return fn if module == "numpy" else np.vectorize(fn, otypes=[object])
