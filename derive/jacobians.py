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

Sizes are bounded before any work: values that fork and merge again multiply the paths
(a chain of n stages `a_i = tanh(U_i @ a_{i-1} + V_i @ a_{i-1})` has 2**n of them), so
`jacobian_sizes(cell)` counts paths and their factors on the stage graph alone, in
linear time, and `check_jacobian_sizes` refuses a cell beyond MAX_PATHS or MAX_FACTORS
in one line (the spec parser calls it, so such a spec is refused before anything is
derived).  `expanded_terms` multiplies a diagonal out only when that stays small: the
expansion of a product of n sums has 2**n terms.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

import sympy as sp

from derive.derivation import Derivation
from derive.errors import DeriveError
from derive.stages import Cell, Kind

MAX_PATHS = 256        # paths of one Jacobian, each listed in the document
MAX_FACTORS = 16384    # factors of all paths of one Jacobian, as printed
MAX_EXPANDED = 256     # terms of a multiplied-out diagonal


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


def has_paths(cell: Cell) -> bool:
    """Whether every stage is affine or elementwise, so a Jacobian is a sum of `Path`s (a
    softmax's or a mean's Jacobian is a full matrix, which a path cannot hold)."""
    return all(s.kind is Kind.AFFINE or s.kind.elementwise for s in cell.stages)


def state_jacobians(derivation: Derivation) -> tuple[StateJacobian, ...]:
    """Every d s_t / d r_{t-1} of the cell, s and r running over its state variables."""
    check_jacobian_sizes(derivation.cell)
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


def jacobian_sizes(cell: Cell) -> dict[tuple[str, str], tuple[int, int]]:
    """{(s, r): (paths, factors)} of every d s_t / d r_{t-1}, before paths are merged.

    Counted on the stage graph (one pass per r): a stage's paths are the sum of its
    inputs' (one per weight of an affine stage), and each path through it gains a factor.
    """
    sizes = {}
    for r in cell.state_names:
        paths, factors = {f"{r}_prev": 1}, {f"{r}_prev": 0}
        for stage in cell.stages:
            inputs = stage.inputs if stage.kind is Kind.AFFINE else tuple(dict.fromkeys(stage.inputs))
            paths[stage.name] = sum(paths.get(x, 0) for x in inputs)
            factors[stage.name] = sum(factors.get(x, 0) + paths.get(x, 0) for x in inputs)
        sizes.update({(s, r): (paths.get(s, 0), factors.get(s, 0)) for s in cell.state_names})
    return sizes


def check_jacobian_sizes(cell: Cell) -> None:
    """A one-line DeriveError when a state Jacobian is too large to derive and print."""
    for (s, r), (paths, factors) in jacobian_sizes(cell).items():
        if paths > MAX_PATHS or factors > MAX_FACTORS:
            raise DeriveError(
                f"the one-step Jacobian d{s}[t]/d{r}[t-1] has {paths} paths through the stages with "
                f"{factors} factors (at most {MAX_PATHS} and {MAX_FACTORS}): values that fork and "
                "merge again multiply the paths; shorten such chains")


def expanded_terms(expr: sp.Expr, limit: int = MAX_EXPANDED) -> tuple[sp.Expr, ...]:
    """The terms of `sp.expand(expr)` when it has at most `limit`, else those of `expr`."""
    if _expanded_size(expr, limit) <= limit:
        return sp.Add.make_args(sp.expand(expr))
    return sp.Add.make_args(expr)


def _expanded_size(expr: sp.Expr, limit: int) -> int:
    """An upper bound on the terms of the expansion of `expr` or of any part of it (capped
    above `limit`), each distinct subexpression visited once: polynomial in its size."""
    cap, counts, stack = limit + 1, {}, [(expr, False)]
    while stack:
        e, ready = stack.pop()
        if e in counts:
            continue
        if not ready:
            stack.append((e, True))
            stack.extend((a, False) for a in e.args if a not in counts)
            continue
        inner = [counts[a] for a in e.args]
        if e.is_Add:
            counts[e] = min(cap, sum(inner))
        elif e.is_Mul:
            counts[e] = min(cap, prod(inner))
        elif e.is_Pow and e.exp.is_Integer and e.exp > 0:
            counts[e] = min(cap, inner[0] ** min(int(e.exp), 64))
        else:
            counts[e] = 1
    return max(counts.values())
