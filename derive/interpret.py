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
    vectors = {name: params[name] for name in cell.vector_param_names}
    for x in xs:
        values = {cell.input_names[0]: x, **{f"{s}_prev": state[s] for s in cell.state_names},
                  **vectors}
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
            if g.stage is None:  # read elementwise: sum its branches over the batch
                total = sum(_term(t, g.param, values, params, carry, None, module) for t in g.terms)
                grads[g.param] = grads[g.param] + total.sum(axis=0)
                continue
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
    if stage.kind is Kind.SOFTMAX:
        a = values[stage.inputs[0]]
        e = _exp(a - a.max(axis=-1, keepdims=True), module)
        return e / e.sum(axis=-1, keepdims=True)
    return _elementwise(eq.numeric, values, module)


def _exp(a, module):
    if module == "numpy":
        return np.exp(a)
    import mpmath
    return np.vectorize(mpmath.exp, otypes=[object])(a)


def _adjoint(adj, values, params, carry, loss_grad, module):
    return sum((_term(t, adj.target, values, params, carry, loss_grad, module) for t in adj.terms), 0)


def term_value(term, target, values, params, carry, loss_grad, module="numpy"):
    """What one branch `term` contributes to `d_target` at one step (batch rows).

    `values` is that step's trace, `carry` the state gradients from step t+1.
    """
    return _term(term, target, values, params, carry, loss_grad, module)


def _term(term, target, values, params, carry, loss_grad, module):
    delta = values.get(f"d_{term.source}")
    if term.kind is TermKind.LOCAL:
        return delta * _elementwise(term.factor, values, module)
    if term.kind is TermKind.WEIGHT:
        return delta @ params[term.weight]
    if term.kind is TermKind.SOFTMAX:
        y = values[term.source]
        return y * (delta - (delta * y).sum(axis=-1, keepdims=True))
    if term.kind is TermKind.LOSS:
        return loss_grad
    return carry[target]


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
