"""Emit the NumPy module of a feed-forward network (no time, no state), printed like the
recurrent module (`printer.py`): every line is its equation's SymPy expression.

Contract: `forward(params, x) -> (y, cache)` with x (B, D); `backward(params, cache, dy)
-> (grads, dx)`; `loss(y, target) -> (L, dy)` for the network's loss head, whose value
and gradient are printed from the loss definition and SymPy's derivative of it.
"""
from __future__ import annotations

import sympy as sp

from codegen.numpy_backend.emit import module_facts, size_sources, tuple_code
from codegen.numpy_backend.printer import expr_code
from codegen.numpy_backend.templates import render
from derive.derivation import Derivation
from derive.terms import Outer
from derive.rules import LOSSES, TARGET, X, loss_gradient
from derive.stages import Kind, Loss


def emit_feedforward(derivation: Derivation, entry, command: str) -> str:
    cell = derivation.cell
    sizes = cell.sizes()
    safe = sp.Symbol("y_safe", real=True)
    head = {X: safe if cell.loss is Loss.CROSS_ENTROPY else sp.Symbol("y", real=True),
            TARGET: sp.Symbol("t", real=True)}
    return render(
        "feedforward.py.j2", cell=cell.name, command=command, **module_facts(entry),
        params=[(name, tuple_code(shape)) for name, shape in cell.params()],
        size_sources=size_sources(cell.params()), packed=False, constants=[],
        input=cell.input_names[0], input_size=sizes[cell.input_names[0]],
        output=cell.output, output_size=sizes[cell.output],
        loss_name=cell.loss.value, one_hot=cell.loss is Loss.CROSS_ENTROPY,
        loss_value=expr_code(LOSSES[cell.loss].xreplace(head)),
        loss_gradient=expr_code(loss_gradient(cell.loss).xreplace(head)),
        cached=list(derivation.cached_values()),
        forward=[_forward_line(eq) for eq in derivation.forward],
        backward=[_adjoint_line(adj, cell) for adj in derivation.adjoints],
        param_grads=[_param_line(g) for g in derivation.param_grads],
        softmax=any(s.kind is Kind.SOFTMAX for s in cell.stages),
        sigmoid=any(s.kind is Kind.SIGMOID for s in cell.stages))


def _forward_line(eq):
    stage = eq.stage
    if stage.kind is Kind.AFFINE:
        terms = [f"{x} @ {w}.T" for w, x in zip(stage.weights, stage.inputs)]
        rhs = " + ".join(terms + ([stage.bias] if stage.bias else []))
    elif stage.kind is Kind.SOFTMAX:
        rhs = f"_softmax({stage.inputs[0]})"
    else:
        rhs = expr_code(eq.numeric)
    return f"{stage.name} = {rhs}  # ({eq.label})"


def _adjoint_line(adj, cell):
    rhs = expr_code(adj.expr, loss_grad="d{}") if adj.expr != 0 else f"numpy.zeros_like({adj.target})"
    fork = f" fork: {', '.join(t.branch for t in adj.terms)}" if adj.is_fork else ""
    return f"d_{adj.target} = {rhs}  # ({adj.label}){fork}"


def _param_line(g):
    """A weight's gradient is one product over the batch; anything else is summed over it."""
    if isinstance(g.expr, Outer):
        rhs = expr_code(g.expr)
    elif g.expr.is_Symbol:
        rhs = f"{expr_code(g.expr)}.sum(axis=0)"
    else:
        rhs = f"({expr_code(g.expr)}).sum(axis=0)"
    return f'grads["{g.param}"] = {rhs}  # ({g.label})'
