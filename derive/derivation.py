"""The reverse sweep: from a cell's stages to its `Derivation` (forward + backward steps).

Walking the stages backwards, every per-step value gets one backward equation, the
adjoint `d_v = dL/dv`, written as a sum with one term per consumer of v (a *fork* when
there are several): an elementwise consumer contributes `d_out * (local partial)`, an
affine consumer `W^T d_out`, the loss contributes its gradient for the output, and the
next time step contributes the carried gradient of a state (BPTT).  Local partials come
from `derive.rules`; this module only asks for them and adds them up at forks.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from derive.rules import CONSTANT, OUT, affine_rule, definition, derivative, mean_rule, softmax_rule
from derive.stages import Cell, Kind, Stage
from derive.terms import (Carried, LossGrad, Outer, RowMean, RowSum, adjoint, is_elementwise, text, value,
                          vector_form)

symbol = value   # the SymPy symbol of a per-step value
LOSS_BRANCH = "loss"          # the branch of a value the loss reads directly
NEXT_STEP_BRANCH = "next step"  # the branch of a state into the next time step


@dataclass(frozen=True)
class Term:
    """One branch of a fork: what flows into the target's adjoint from one consumer."""

    branch: str               # consuming stage name, LOSS_BRANCH or NEXT_STEP_BRANCH
    source: str               # value whose adjoint flows in
    expr: sp.Expr             # what flows in, as a SymPy expression (derive.terms)

    def __str__(self) -> str:
        return text(self.expr)


@dataclass(frozen=True)
class Adjoint:
    """Backward equation `d_target = sum(terms)`; a fork when it has several terms."""

    target: str
    terms: tuple[Term, ...]
    label: str
    size: str

    @property
    def is_fork(self) -> bool:
        return len(self.terms) > 1

    @property
    def expr(self) -> sp.Expr:
        """The whole right-hand side: the sum of the branches."""
        return sp.Add(*(t.expr for t in self.terms))


@dataclass(frozen=True)
class ParamGrad:
    """`d_param`, summed over time steps and batch.

    A weight gets `d_stage input^T`, a bias `d_stage`; a parameter read elementwise
    (stage None) gets the sum of its `terms`, like any value at a fork.
    """

    param: str
    stage: str | None
    input: str | None
    label: str
    shape: tuple[str, ...]
    terms: tuple[Term, ...] = ()

    @property
    def expr(self) -> sp.Expr:
        """What one step and one batch row add to the gradient (summed over both)."""
        if self.stage is None:
            return sp.Add(*(t.expr for t in self.terms))
        d = adjoint(self.stage)
        return Outer(d, symbol(self.input)) if self.input else d


@dataclass(frozen=True)
class LocalPartial:
    """d(stage)/d(input) of an elementwise stage, in terms of per-step value symbols."""

    stage: str
    wrt: str
    expr: sp.Expr


@dataclass(frozen=True)
class ForwardEq:
    stage: Stage
    numeric: sp.Expr | None  # stable elementwise form in value symbols (None for affine)
    label: str
    size: str


@dataclass(frozen=True)
class Derivation:
    cell: Cell
    forward: tuple[ForwardEq, ...]
    partials: tuple[LocalPartial, ...]
    adjoints: tuple[Adjoint, ...]
    param_grads: tuple[ParamGrad, ...]

    def adjoint(self, target: str) -> Adjoint:
        return next(a for a in self.adjoints if a.target == target)

    def cached_values(self) -> tuple[str, ...]:
        """Per-step values the backward pass reads, in forward order."""
        read = {str(s) for p in self.partials for s in p.expr.free_symbols}
        read |= {g.input for g in self.param_grads if g.input}
        read |= {str(s) for a in self.adjoints for t in a.terms if not is_elementwise(t.expr)
                 for node in t.expr.atoms(RowSum, RowMean) for s in node.free_symbols}
        order = list(self.cell.input_names) + [f"{s}_prev" for s in self.cell.state_names]
        order += [eq.stage.name for eq in self.forward]
        return tuple(v for v in order if v in read)

    def __str__(self) -> str:
        lines = [f"derivation of {self.cell.name}: {len(self.forward)} forward stages, "
                 f"{len(self.adjoints)} backward steps, {len(self.param_grads)} parameter gradients",
                 "forward:"]
        lines += [f"  ({eq.label}) {eq.stage}" for eq in self.forward]
        lines.append("backward (one time step, last stage first):")
        for adj in self.adjoints:
            fork = f"    [fork: {', '.join(t.branch for t in adj.terms)}]" if adj.is_fork else ""
            body = " + ".join(str(t) for t in adj.terms) or "0"
            lines.append(f"  ({adj.label}) d_{adj.target} = {body}{fork}")
        lines.append("  (d_v = dL/dv is the total gradient; dl_t/dv the direct gradient of step t's "
                     "loss term l_t; d_s_prev[t+1] what step t+1 sent back to its s_prev)")
        lines.append("parameters (summed over time steps and batch):")
        for g in self.param_grads:
            lines.append(f"  ({g.label}) d_{g.param} = sum {text(g.expr)}")
        return "\n".join(lines)


@lru_cache(maxsize=64)
def derive(cell: Cell) -> Derivation:
    """Differentiate `cell` stage by stage and sweep backwards through stages and forks.

    Cells and derivations are frozen, so a cell's derivation is computed once per process.
    """
    sizes = cell.sizes()
    forward = tuple(ForwardEq(s, _numeric(s), f"F{n}", sizes[s.name])
                    for n, s in enumerate(cell.stages, 1))
    partials = tuple(p for s in cell.stages if s.kind.elementwise
                     for p in _stage_partials(s))
    targets = [s.name for s in reversed(cell.stages)]
    targets += [f"{s}_prev" for s in reversed(cell.state_names)]
    targets += list(reversed(cell.input_names))
    adjoints = tuple(Adjoint(v, _terms(cell, v, partials), f"B{n}", sizes[v])
                     for n, v in enumerate(targets, 1))
    return Derivation(cell, forward, partials, adjoints, _param_grads(cell, partials))


def _numeric(stage: Stage):
    if stage.kind is Kind.MEAN:   # the mean of the stacked rows: the mean of the blocks' means
        return sp.Add(*(RowMean(symbol(z)) for z in stage.inputs)) / len(stage.inputs)
    if not stage.kind.elementwise:
        return None
    d = definition(stage.kind)
    return d.numeric.subs(_arguments(stage, d), simultaneous=True)


def _arguments(stage: Stage, d):
    """The definition's symbols -> this stage's input symbols (and its constant)."""
    subs = dict(zip(d.args, map(symbol, stage.inputs)))
    if stage.constant is not None:
        subs[CONSTANT] = sp.nsimplify(stage.constant, rational=True)
    return subs


def _stage_partials(stage: Stage):
    d = definition(stage.kind)
    subs = _arguments(stage, d)
    subs[OUT] = symbol(stage.name)
    for wrt in dict.fromkeys(stage.inputs):
        expr = sum(derivative(stage.kind, k).expr.subs(subs, simultaneous=True)
                   for k, name in enumerate(stage.inputs) if name == wrt)
        yield LocalPartial(stage.name, wrt, sp.sympify(expr))


def _terms(cell: Cell, value: str, partials) -> tuple[Term, ...]:
    """Every branch through which `value` reaches the loss, in stage order."""
    terms = []
    for stage in cell.stages:
        if value not in stage.inputs:
            continue
        if stage.kind is Kind.AFFINE:
            terms += [Term(stage.name, stage.name, _through_affine(w, stage.name))
                      for w, x in zip(stage.weights, stage.inputs) if x == value]
        elif stage.kind is Kind.SOFTMAX:
            terms.append(Term(stage.name, stage.name, _through_softmax(stage.name)))
        elif stage.kind is Kind.MEAN:
            terms.append(Term(stage.name, stage.name,
                              stage.inputs.count(value) * _through_mean(stage.name, len(stage.inputs))))
        else:
            factor = next(p.expr for p in partials if p.stage == stage.name and p.wrt == value)
            terms.append(Term(stage.name, stage.name, adjoint(stage.name) * factor))
    if value == cell.output:
        terms.append(Term(LOSS_BRANCH, value, LossGrad(symbol(value))))
    if value in cell.state_names:
        terms.append(Term(NEXT_STEP_BRANCH, f"{value}_prev", Carried(symbol(value))))
    return tuple(terms)


def _through_affine(weight: str, out: str) -> sp.Expr:
    """The affine rule's d_input (index notation, derived by SymPy) for this weight: WT(W, d_out)."""
    rule = affine_rule()
    s = rule.symbols
    return vector_form(rule.d_input, s["q"], {s["W"]: symbol(weight), s["delta"]: adjoint(out)})


def _through_softmax(y: str) -> sp.Expr:
    """The softmax rule's d_input (derived by SymPy): y*(d_y - RowSum(d_y*y))."""
    rule = softmax_rule()
    s = rule.symbols
    vjp = vector_form(rule.d_input, s["q"], {s["y"]: symbol(y), s["delta"]: adjoint(y)})
    return sp.factor_terms(vjp)   # y*(d_y - RowSum(d_y*y)): y read once


def _through_mean(mu: str, blocks: int) -> sp.Expr:
    """The mean rule's d_input (derived by SymPy) for `blocks` stacked inputs: RowMean(d_mu)/blocks."""
    rule = mean_rule()
    s = rule.symbols
    vjp = vector_form(rule.d_input, s["q"], {s["delta"]: adjoint(mu)})
    vjp = vjp.replace(RowSum, lambda e: s["H"] * RowMean(e))   # a sum over H entries is H means
    return vjp.subs(s["m"], blocks)


def _param_grads(cell: Cell, partials) -> tuple[ParamGrad, ...]:
    shapes = dict(cell.params())
    by_param = {p: (None, None) for p in cell.vector_param_names}
    for stage in cell.stages:
        if stage.kind is Kind.AFFINE:
            for w, x in zip(stage.weights, stage.inputs):
                by_param[w] = (stage.name, x)
            if stage.bias:
                by_param[stage.bias] = (stage.name, None)
    return tuple(ParamGrad(p, *by_param[p], f"P{n}", shapes[p],
                           _terms(cell, p, partials) if p in cell.vector_param_names else ())
                 for n, (p, _) in enumerate(cell.params(), 1))
