"""Products of local partials along chains, computed for all steps before the backward loop
(part of `codegen.program`, used by a backend that asks for it).

Why: a value whose adjoint has one consumer after another down from a *root* (an adjoint
the loop must compute as a sum: a fork such as d_h, d_c, or a W^T d product) has the adjoint
d_root times a factor free of adjoints (for the LSTM d_a_f = d_c * c_prev f(1 - f)).  The
factor reads forward values only, so it is not sequential: one vectorised pass over all steps
after the forward computes it, and the loop keeps only the roots' sums, the carried terms,
one multiplication per run of gradient columns that share a root, and the recurrent product.

Contract: `chains(derivation, plan) -> Chains | None`, None where the cell's structure does
not fit (an adjoint that is not linear in the roots, a parameter read elementwise whose
gradient the loop sums, a pre-activation that is a root itself).  Every factor is composed
from the derivation's adjoint expressions (SymPy's derivatives): the coefficient of a root's
adjoint symbol, found by differentiating the expression with respect to it, checked free of
every adjoint, multiplied along the chain.  Nothing is typed in per cell.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from codegen.records import Assign, Copy, Ref, Scale, Zeros, part
from codegen.schedule import Plan, code, stacked
from derive.terms import WT, Carried, LossGrad, adjoint

__all__ = ["Chains", "chains"]


@dataclass(frozen=True)
class Chains:
    """roots: target -> ({root base: factor}, the rest: carried, loss and W^T d terms, labels of
    the chain adjoints folded into its factors); chained: target -> (root base, factor, labels
    of the adjoints composed, this one first)."""

    roots: dict
    chained: dict


def _opaque(expr) -> bool:
    return bool(expr.atoms(WT, Carried, LossGrad))


def chains(derivation, plan: Plan) -> Chains | None:
    if any(g.stage is None for g in derivation.param_grads):
        return None   # the loop sums a parameter's gradient from chain adjoints: keep them
    adjoints = {adjoint(a.target) for a in derivation.adjoints}
    adjoints |= {adjoint(p.buffer) for p in plan.products}
    roots, chained = {}, {}
    for adj in derivation.adjoints:
        expr = stacked(plan, adj)
        via = tuple(label for t, (_, _, found) in chained.items()
                    if adjoint(t) in expr.free_symbols for label in found)
        expr = expr.xreplace({adjoint(t): f * adjoint(b) for t, (b, f, _) in chained.items()})
        bases = [adjoint(r) for r in roots if adjoint(r) in expr.free_symbols]
        # an adjoint is linear in the others (the chain rule is): its coefficients are its
        # derivatives, and what is left is its value with the roots' adjoints at zero
        factors = {b: sp.diff(expr, b) for b in bases}
        rest = expr.xreplace({b: sp.Integer(0) for b in bases})
        if any(f.free_symbols & adjoints or _opaque(f) for f in factors.values()) or \
                rest.free_symbols & {adjoint(r) for r in roots}:
            return None
        factors = {str(b)[2:]: f for b, f in factors.items() if f != 0}
        if rest == 0 and len(factors) == 1:
            (base, factor), = factors.items()
            chained[adj.target] = (base, factor, (adj.label,) + via)
        elif rest != 0 and (rest.free_symbols - _opaque_symbols(rest)) & adjoints - \
                {adjoint(p.buffer) for p in plan.products}:
            return None
        else:
            roots[adj.target] = (factors, rest, via)
    if any(m in roots for g in plan.groups for m in g.names):
        return None
    return Chains(roots, chained)


def _opaque_symbols(expr) -> set:
    """Symbols read inside W^T d, carried and loss terms (no adjoint of a value among them)."""
    return {s for node in expr.atoms(Carried, LossGrad) for s in node.free_symbols}


def _factor_name(plan: Plan, target: str, base: str | None = None) -> str:
    """Where a factor is stored per step: a pre-activation's in the columns of its gradient
    buffer's twin (F_A_x beside d_A_x), a root's per base (F_c_h), any other's by its target."""
    g = plan.group_of(target)
    if g is not None:
        return f"F_{plan.delta_of(plan.home(g)).buffer}"
    return f"F_{target}" if base is None else f"F_{target}_{base}"


def stored_factors(derivation, plan: Plan, found: Chains):
    """(buffer, width, columns or None, factor, labels) of every factor the loop reads that is not
    a number: the columns of a product's gradient, a materialised chain, a root's term."""
    sizes = {a.target: a.size for a in derivation.adjoints}
    cell = derivation.cell
    for g in plan.groups:
        home = plan.home(g)
        for m in g.names:
            base, factor, labels = found.chained[m]
            yield (_factor_name(plan, m), home.width, home.columns(g, m), factor, labels)
    for target, (base, factor, labels) in found.chained.items():
        if _materialised(cell, plan, target) and not factor.is_Number:
            yield (_factor_name(plan, target), sizes[target], None, factor, labels)
    for target, (factors, _, labels) in found.roots.items():
        for base, factor in factors.items():
            if not factor.is_Number:
                yield (_factor_name(plan, target, base), sizes[target], None, factor, labels)


def _materialised(cell, plan: Plan, target: str) -> bool:
    """A chain adjoint the loop writes: a state's carried gradient or an input's (dxs)."""
    return plan.group_of(target) is None and \
        (target in cell.input_names or target[:-5] in cell.state_names and target.endswith("_prev"))


def factor_buffers(stored) -> list[tuple[str, str]]:
    """(buffer, width) of every factor buffer, once each."""
    return list(dict.fromkeys((name, width) for name, width, *_ in stored))


def factor_pass(forward_views, stored) -> list:
    """One step's records writing every stored factor from the forward's values (a backend runs
    them for all steps at once, `program_recompute.all_steps`)."""
    out = list(forward_views)
    for name, width, columns, factor, labels in stored:
        label = " ".join(f"({label})" for label in labels)
        out.append(Assign(Ref(f"{name}_seq", "t", columns), factor, label))
    return out


def chain_loop(derivation, plan: Plan, found: Chains, order) -> list:
    """One backward step: the roots' sums, each run of gradient columns sharing a root as one
    multiplication by stored factors, the carried gradients; in the derivation's order."""
    cell = derivation.cell
    out = []
    for adj in derivation.adjoints:
        t = adj.target
        if t in found.roots:
            out += _root(derivation, plan, found, adj)
        elif plan.group_of(t) is not None and t == max(plan.group_of(t).names, key=order.get):
            out += _runs(derivation, plan, found, plan.group_of(t))
        elif _materialised(cell, plan, t):
            base, factor, labels = found.chained[t]
            f = factor if factor.is_Number else sp.Symbol(_factor_name(plan, t), real=True)
            expr = f * adjoint(base)
            label = _through(labels[:1], labels[1:])
            out.append(Assign(Ref(f"d{t}s", "t"), expr, label) if t in cell.input_names
                       else Assign(f"d_{t}", expr, label))
    return out


def _root(derivation, plan: Plan, found: Chains, adj) -> list:
    factors, rest, via = found.roots[adj.target]
    expr = rest + sum((f * adjoint(b) if f.is_Number else
                       sp.Symbol(_factor_name(plan, adj.target, b), real=True) * adjoint(b)
                       for b, f in factors.items()), sp.Integer(0))
    label = f"({adj.label})" + (f" fork: {', '.join(t.branch for t in adj.terms)}" if adj.is_fork else "")
    if via:
        label += "; " + _through([], via)
    if adj.target in derivation.cell.input_names:
        return [Assign(Ref(f"d{adj.target}s", "t"), expr, label)] if expr != 0 else []
    if expr == 0:
        return [Zeros(f"d_{adj.target}", ("B", adj.size), label)]
    return [Assign(f"d_{adj.target}", expr, label)]


def _runs(derivation, plan: Plan, found: Chains, g) -> list:
    """A group's gradient columns: one Scale per run of members with the same root, then the
    copies into the other products' gradient buffers (as `program_backward._member`)."""
    home = plan.home(g)
    delta = f"d_{plan.delta_of(home).buffer}"
    runs: list[list[str]] = []
    for m in g.names:
        if runs and found.chained[runs[-1][0]][0] == found.chained[m][0]:
            runs[-1].append(m)
        else:
            runs.append([m])
    bases = [found.chained[m][0] for m in g.names]
    common = max(dict.fromkeys(bases), key=bases.count)
    # the most common root first over all the group's columns (one call, contiguous when the
    # group fills its buffer), then the other roots' runs over their columns
    runs = [list(g.names)] + [run for run in runs if found.chained[run[0]][0] != common]
    out = []
    for run in runs:
        start = home.start(g) + g.offset(run[0])
        size = g.stages[g.names.index(run[0])].size
        cols = f"{code(start)}:{code(start + len(run) * sp.Symbol(size))}"
        mine = [m for m in run if run is not runs[0] or found.chained[m][0] == common]
        labels = _through([derivation.adjoint(m).label for m in mine],
                          [label for m in mine for label in found.chained[m][2][1:]])
        out.append(Scale(part(delta, cols, home.width), f"d_{found.chained[run[0]][0]}",
                         part(_factor_name(plan, run[0]), cols, home.width), len(run), size,
                         labels))
    for p in plan.products_of(g):
        if not p.hoisted and plan.delta_of(p) is not plan.delta_of(home):
            out.append(Copy(Ref(f"d_{plan.delta_of(p).buffer}", columns=p.columns(g)),
                            Ref(delta, columns=home.columns(g))))
    return out


def _through(own, via) -> str:
    """A comment's labels: the equations a line computes, then those its stored factors compose."""
    text = " ".join(f"({label})" for label in own)
    rest = " ".join(f"({label})" for label in dict.fromkeys(via) if label not in own)
    return f"{text} through {rest}".strip() if rest else text
