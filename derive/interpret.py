"""Run a `Derivation` directly, step by step, on concrete arrays (no code generation).

This is the reference meaning of a derivation: the forward stages in order, then the
backward equations in order, exactly as `print(derivation)` lists them.  It works on
float arrays and on object arrays of mpmath numbers (the symbolic self-check evaluates
it at rational points with 50 significant digits).  Values are (B, n) batch-row arrays,
so an affine stage is `x @ W.T + b` and its input adjoint `d_a @ W`.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import sympy as sp

from derive.derivation import Derivation
from derive.stages import Kind
from derive.terms import NON_ELEMENTWISE, WT, LossGrad, Outer, RowMean, RowSum


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
        for adj in derivation.adjoints:   # a column (a mean's gradient) is given to every entry
            values[f"d_{adj.target}"] = np.broadcast_to(
                _adjoint(adj, values, params, carry, dhs[t], module), values[adj.target].shape).copy()
        carry = {s: values[f"d_{s}_prev"] for s in cell.state_names}
        env = dict(values, **params)
        for g in derivation.param_grads:   # summed over the batch rows, then over steps
            step = evaluate(g.expr, env, module, carry=carry)
            grads[g.param] = grads[g.param] + (step if isinstance(g.expr, Outer) else step.sum(axis=0))
    dxs = np.stack([values[f"d_{cell.input_names[0]}"] for values in trace])
    return np.stack(hs), state, grads, dxs, carry, trace


def _stage_value(eq, values, params, module):
    stage = eq.stage
    if stage.kind is Kind.AFFINE:
        out = sum(values[x] @ params[w].T for w, x in zip(stage.weights, stage.inputs))
        return out + params[stage.bias] if stage.bias else out
    if stage.kind is Kind.MEAN:   # a column of means, broadcast to the size of one input
        mean = evaluate(eq.numeric, values, module)
        return np.broadcast_to(mean, values[stage.inputs[0]].shape).copy()
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
    env = dict(values)
    env.update(params)
    return evaluate(term.expr, env, module, loss_grad=loss_grad, carry=carry)


def evaluate(expr, env, module="numpy", *, loss_grad=None, carry=None):
    """The value of a backward expression (derive.terms) at one step, on batch-row arrays.

    `env` maps symbol names (values, adjoints `d_v`, parameters) to arrays; `loss_grad` is
    the step's direct loss gradient and `carry[s]` the gradient of state s from step t+1.
    Non-elementwise nodes are evaluated here, innermost first; what is left is elementwise
    and compiled by lambdify (vectorised over object arrays for mpmath).
    """
    nodes, rest = _split(sp.sympify(expr))
    env = dict(env)
    for name, node in nodes:
        env[name] = _node(node, env, module, loss_grad, carry)
    return _elementwise(rest, env, module)


@lru_cache(maxsize=None)
def _split(expr):
    """(named non-elementwise nodes, innermost first, each reading only earlier names; the
    elementwise rest): SymPy's work on an expression done once, not at every step."""
    nodes = []
    while True:
        special = [n for n in sp.preorder_traversal(expr) if isinstance(n, NON_ELEMENTWISE)]
        if not special:
            return tuple(nodes), expr
        node = special[-1]     # preorder: the last one found has no special node inside it
        name = f"_node{len(nodes)}"
        nodes.append((name, node))
        expr = expr.xreplace({node: sp.Symbol(name, real=True)})


def _node(node, env, module, loss_grad, carry):
    """One non-elementwise node: a matrix product, a row sum, a loss or carried gradient."""
    if isinstance(node, WT):
        weight, delta = node.args
        return _elementwise(delta, env, module) @ env[str(weight)]
    if isinstance(node, Outer):   # d x^T summed over the batch rows
        delta, x = node.args
        return _elementwise(delta, env, module).T @ _elementwise(x, env, module)
    if isinstance(node, RowSum):
        return _elementwise(node.args[0], env, module).sum(axis=-1, keepdims=True)
    if isinstance(node, RowMean):
        rows = _elementwise(node.args[0], env, module)
        return rows.sum(axis=-1, keepdims=True) / rows.shape[-1]
    if isinstance(node, LossGrad):
        return loss_grad
    return carry[str(node.args[0])]


def _elementwise(expr, values, module):
    names = tuple(sorted(str(s) for s in expr.free_symbols))
    if not names:
        return float(expr) if module == "numpy" else sp.Float(expr)
    fn = _compiled(expr, names, module)
    return fn(*(values[n] for n in names))


# Functions NumPy lacks, element by element from the math module (the evaluator is the
# reference meaning of a derivation, not the fast code).
_MATH = {"erf": np.vectorize(math.erf, otypes=[float]), "erfc": np.vectorize(math.erfc, otypes=[float])}


@lru_cache(maxsize=None)
def _compiled(expr, names, module):
    modules = [_MATH, "numpy"] if module == "numpy" else module
    fn = sp.lambdify([sp.Symbol(n, real=True) for n in names], expr, modules)
    return fn if module == "numpy" else np.vectorize(fn, otypes=[object])
