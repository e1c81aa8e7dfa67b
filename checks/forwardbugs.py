"""Wrong forwards, generated from a cell's stages, to say what a user's forward computes.

Sibling affine stages (same inputs, size and bias) with their parameters permuted (a gate
order mixed up), an activation left out or exchanged for another of the cell's, a unary
stage's input and output exchanged where they are used (a GRU whose z gates the other
side), a state's previous value read where its new one belongs or the other way round.  Each is run by `derive.interpret.run` on the derivation with the changed forward.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import permutations
from typing import Callable

import numpy as np

from checks.hypotheses import unary
from derive.interpret import run
from derive.ops import Kind
from derive.terms import value


@dataclass(frozen=True)
class ForwardHypothesis:
    """Code whose forward is `derivation` with `forward` stages on parameters `params(ours)`."""

    text: str
    forward: tuple
    params: Callable = lambda p: p


def forward_hypotheses(derivation):
    """Every forward hypothesis: gate orders, activations, exchanged values."""
    yield from _orders(derivation)
    yield from _activations(derivation)
    yield from _exchanges(derivation)


def _orders(derivation):
    """Sibling affine stages reading each other's parameters."""
    cell, eqs = derivation.cell, derivation.forward
    affine = [s for s in cell.stages if s.kind is Kind.AFFINE]
    groups = {}
    for s in affine:
        groups.setdefault((s.inputs, s.size, bool(s.bias)), []).append(s)
    for group in groups.values():
        names = [s.name for s in group]
        for order in permutations(range(len(group))):
            if order == tuple(range(len(group))):
                continue
            moved = {group[k]: group[j] for k, j in enumerate(order) if k != j}
            words = ", ".join(f"{a.name} with {b.name}'s parameters" for a, b in moved.items())
            yield ForwardHypothesis(f"your forward computes {words} (the gate blocks of {', '.join(names)} "
                                    "in another order)", eqs, _permuted(moved))


def _activations(derivation):
    """An activation left out, or exchanged for another activation of the cell."""
    cell, eqs = derivation.cell, derivation.forward
    kinds = {s.kind for s, _ in unary(cell) if s.kind.activation}
    for stage, _ in unary(cell):
        if not stage.kind.activation:
            continue
        u = value(stage.inputs[0])
        yield ForwardHypothesis(f"your forward leaves out {stage.kind.name} in {stage} ({_label(eqs, stage)}): "
                                f"{stage.name} = {u}", _with(eqs, stage.name, u))
        for other in kinds - {stage.kind}:
            yield ForwardHypothesis(f"your forward uses {other.name} instead of {stage.kind.name} in {stage} "
                                    f"({_label(eqs, stage)})",
                                    _with(eqs, stage.name, other.numeric.subs(other.args[0], u)))


def _exchanges(derivation):
    """A unary stage's input and output exchanged where used; s_prev and s exchanged."""
    cell, eqs = derivation.cell, derivation.forward
    for stage, _ in unary(cell):
        y, u = value(stage.name), value(stage.inputs[0])
        swapped = tuple(replace(eq, numeric=eq.numeric.xreplace({y: u, u: y}))
                        if eq.numeric is not None and eq.stage.name != stage.name else eq for eq in eqs)
        if swapped != eqs:
            side = f" ({u} gates the other side)" if stage.kind is Kind.ONE_MINUS else ""
            yield ForwardHypothesis(f"your forward exchanges {u} and {y} = {stage.kind.name}({u}) where they are "
                                    f"used{side}", swapped)
    for eq in eqs:
        for s in cell.state_names if eq.numeric is not None else ():
            for a, b in ((value(s), value(f"{s}_prev")), (value(f"{s}_prev"), value(s))):
                if a in eq.numeric.free_symbols:
                    yield ForwardHypothesis(f"your forward reads {b} where {a} belongs in {eq.stage} ({eq.label})",
                                            _with(eqs, eq.stage.name, eq.numeric.xreplace({a: b})))


def _label(eqs, stage):
    return next(eq.label for eq in eqs if eq.stage.name == stage.name)


def _with(eqs, name, expr):
    return tuple(replace(eq, numeric=expr) if eq.stage.name == name else eq for eq in eqs)


def _permuted(moved):
    def params(p):
        out = dict(p)
        for a, b in moved.items():
            for wa, wb in zip((*a.weights, a.bias), (*b.weights, b.bias)):
                out[wa] = p[wb]
        return out
    return params


def forward_prediction(derivation, problem, hyp: ForwardHypothesis) -> dict | None:
    """The forward outputs code with `hyp`'s forward returns; None if a stage would read a
    value before it is computed."""
    p = problem
    d = replace(derivation, forward=hyp.forward)
    try:
        with np.errstate(all="ignore"):
            hs, stateT, *_ = run(d, hyp.params(p.params), p.xs, p.state0, p.dhs, p.dstateT)
    except KeyError:
        return None
    return {"hs": hs, **{f"{s}_T": v for s, v in stateT.items()}}
