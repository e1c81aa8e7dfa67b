"""State-to-state Jacobians of one time step, for the gradient-flow discussion.

`state_jacobians(derivation)` returns, for every pair of state variables (s, r), the
Jacobian d s_t / d r_{t-1} of one step, found by running the chain rule *forwards*
through the stages (forward-mode): each value's Jacobian with respect to r_{t-1} is a
sum of `Path`s, and a path is a product `diag(d0) W1 diag(d1) W2 ...` of diagonal
matrices (elementwise stages; their entries are SymPy's local partials from the
derivation, multiplied by SymPy) and weight matrices (affine stages).  Nothing is typed
in: the local partials are the derivation's own, the products are SymPy's.

`Path.weights == ()` is a weight-free path: the state reaches its next value through
elementwise stages only, the additive "carousel" along which gradients survive many
steps as long as its diagonal stays near one.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.derivation import Derivation
from derive.stages import Kind


@dataclass(frozen=True)
class Path:
    """`diag(diags[0]) weights[0] diag(diags[1]) weights[1] ... diag(diags[-1])`."""

    diags: tuple[sp.Expr, ...]
    weights: tuple[str, ...] = ()

    def times_diag(self, factor: sp.Expr) -> "Path":
        return Path((factor * self.diags[0],) + self.diags[1:], self.weights)

    def times_weight(self, weight: str) -> "Path":
        return Path((sp.Integer(1),) + self.diags, (weight,) + self.weights)

    def __str__(self) -> str:
        parts = []
        for n, d in enumerate(self.diags):
            if d != 1:
                parts.append(f"diag({d})")
            if n < len(self.weights):
                parts.append(self.weights[n])
        return " ".join(parts) or "I"


@dataclass(frozen=True)
class StateJacobian:
    """d state_t / d previous_{t-1} = sum of `paths` (empty: no dependence)."""

    state: str
    previous: str
    paths: tuple[Path, ...]

    @property
    def weight_free(self) -> tuple[Path, ...]:
        return tuple(p for p in self.paths if not p.weights)

    def __str__(self) -> str:
        body = " + ".join(map(str, self.paths)) or "0"
        return f"d{self.state}[t]/d{self.previous}[t-1] = {body}"


def state_jacobians(derivation: Derivation) -> tuple[StateJacobian, ...]:
    """Every d s_t / d r_{t-1} of the cell, s and r running over its state variables."""
    states = derivation.cell.state_names
    modes = {r: _forward_mode(derivation, f"{r}_prev") for r in states}   # one sweep per r
    return tuple(StateJacobian(s, r, modes[r][s]) for s in states for r in states)


def _forward_mode(derivation: Derivation, seed: str) -> dict[str, tuple[Path, ...]]:
    """Jacobian of every value with respect to `seed`, stage by stage in forward order."""
    partial = {(p.stage, p.wrt): p.expr for p in derivation.partials}
    jac: dict[str, tuple[Path, ...]] = {seed: (Path((sp.Integer(1),)),)}
    for eq in derivation.forward:
        stage = eq.stage
        if stage.kind is Kind.SOFTMAX:
            raise ValueError("state Jacobians through a softmax stage are not supported")
        paths = []
        for n, name in enumerate(stage.inputs):
            if stage.kind is Kind.AFFINE:
                paths += [p.times_weight(stage.weights[n]) for p in jac.get(name, ())]
            elif name not in stage.inputs[:n]:  # a repeated input has one summed partial
                paths += [p.times_diag(partial[stage.name, name]) for p in jac.get(name, ())]
        jac[stage.name] = _combine(paths)
    return jac


def _combine(paths: list[Path]) -> tuple[Path, ...]:
    """Add paths that differ only in their leading diagonal: diag(a) W + diag(b) W."""
    merged: dict[tuple, sp.Expr] = {}
    for p in paths:
        key = (p.weights, p.diags[1:])
        merged[key] = merged.get(key, sp.Integer(0)) + p.diags[0]
    return tuple(Path((lead,) + rest, weights)
                 for (weights, rest), lead in merged.items() if lead != 0)
