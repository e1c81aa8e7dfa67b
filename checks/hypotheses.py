"""Wrong derivations, generated from a derivation's own stages, to name a user's bug.

Every hypothesis is one perturbation of the derived backward terms (or of the forward
stages), evaluated with the one evaluator `derive.interpret.evaluate`, step by step, so
it can also differ between steps.  They are generated from the structure, never per cell:

- a carried gradient (a 'next step' branch) dropped at every step but the last, where
  code adds the final-state gradient separately; the final-state gradient ignored;
- a local factor evaluated at the wrong point: an activation's output y replaced in it by
  the pre-activation (a(1-a) of a_o), or by the activation applied again (1 - tanh(k)^2);
- a value from the wrong step: s_prev where this step's s belongs, or s for s_prev, or any value
  (a weight gradient's input, a value in a branch) read from step t-1's cache; a branch reading
  only this step's loss gradient where the whole gradient of the output belongs;
- one stage's gradient copied into a sibling's (same kind and size): where it is used, or
  in one parameter's gradient; two siblings' gradients swapped where they are used;
- parameter gradients from one step only (the first or the last) instead of summed;
- the loss gradient of step t-1 read at step t;
- a branch reading another, earlier gradient of the same size (d_h where d_n belongs), a
  unary stage's output where its input belongs or the other way round (1 - z for z), a
  fork's branch counted twice, one part of a product factor left out (o of o*(1 - o)).

The forward's hypotheses are in `checks.forwardbugs`.

`Backward` is what a hypothesis changes: the adjoints and one step's expression of
every parameter gradient.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import combinations, permutations
from typing import Callable

import numpy as np

from derive.derivation import NEXT_STEP_BRANCH
from derive.interpret import evaluate, run
from derive.terms import LossGrad, adjoint, is_elementwise, text, value


@dataclass(frozen=True)
class Backward:
    """The backward equations one step uses: adjoints and (param, one step's expression)."""

    adjoints: tuple
    params: tuple

    @staticmethod
    def of(derivation) -> "Backward":
        return Backward(derivation.adjoints, tuple((g.param, g.expr) for g in derivation.param_grads))

    def mapped(self, fn, targets=None, params=True) -> "Backward":
        """Every term (of `targets`' adjoints, or all) and parameter expression through fn."""
        adjoints = tuple(replace(a, terms=tuple(replace(t, expr=fn(t.expr)) for t in a.terms))
                         if targets is None or a.target in targets else a for a in self.adjoints)
        grads = tuple((p, fn(e)) for p, e in self.params) if params else self.params
        return Backward(adjoints, grads)


@dataclass(frozen=True)
class Hypothesis:
    """`text` is true of code that computes `change(backward, t, T)` at step t of T; with
    `steps` ('first' or 'last'), the gradients of `only` (all parameters if empty) are from
    that step only; with `loss_shift`, step t reads the loss gradient of step t + shift
    (Python's wrap-around)."""

    text: str
    change: Callable = lambda bw, t, T: bw
    steps: str | None = None
    loss_shift: int = 0
    only: tuple[str, ...] = ()


def backward_hypotheses(derivation):
    """Every backward hypothesis, cheapest to state first."""
    cell = derivation.cell
    yield from _carried(derivation)
    yield from _wrong_point(derivation)
    yield from _wrong_step(derivation)
    yield from _siblings(derivation)
    yield from _wrong_source(derivation)
    yield from _twice(derivation)
    yield from _part_dropped(derivation)
    yield from _step_before(derivation)
    groups = {}   # the parameters one stacked matrix usually holds: by the value each multiplies
    for g in derivation.param_grads:
        groups.setdefault(g.input, []).append(g.param)
    for steps, when in (("first", "the first step (t=0)"), ("last", "the last step")):
        yield Hypothesis(f"the parameter gradients are taken from {when} only, not summed over time steps",
                         steps=steps)
        for params in groups.values() if len(groups) > 1 else ():
            yield Hypothesis(f"the gradients of {', '.join(params)} are taken from {when} only, not summed over "
                             "time steps", steps=steps, only=tuple(params))
    loss = [a for a in derivation.adjoints if any(t.expr.has(LossGrad) for t in a.terms)]
    for a in loss:
        yield Hypothesis(f"d_{a.target} reads the loss gradient of step t-1 (dhs[t-1]) instead of step t "
                         f"({a.label}: dl_t/d{cell.output})", loss_shift=-1)


def _carried(derivation):
    for adj in derivation.adjoints:
        for term in adj.terms:
            if term.branch != NEXT_STEP_BRANCH:
                continue
            drop = _without(adj.target, term.branch)
            yield Hypothesis(f"d_{adj.target} drops the gradient carried back from step t+1 ({adj.label}: {term}) "
                             "at every step but the last (only the final-state gradient reaches it)",
                             lambda bw, t, T, drop=drop: drop(bw) if t < T - 1 else bw)
            yield Hypothesis(f"d_{adj.target} ignores the final-state gradient dL/d{adj.target}_T "
                             f"({adj.label}: {term} at the last step)",
                             lambda bw, t, T, drop=drop: drop(bw) if t == T - 1 else bw)


def _without(target, branch):
    def drop(bw):
        return Backward(tuple(replace(a, terms=tuple(t for t in a.terms if t.branch != branch))
                              if a.target == target else a for a in bw.adjoints), bw.params)
    return drop


def unary(cell):
    """Elementwise stages of one input: (stage, its SymPy function of a symbol)."""
    for stage in cell.stages:
        if stage.kind.elementwise and len(stage.inputs) == 1 and stage.constant is None:
            op = stage.kind
            yield stage, (lambda e, op=op: op.numeric.subs(op.args[0], e))


def _wrong_point(derivation):
    """A local factor reading an activation's output y at its input, or at f(y)."""
    cell = derivation.cell
    for stage, fn in unary(cell):
        if not stage.kind.activation:
            continue
        y, u = value(stage.name), value(stage.inputs[0])
        for adj in derivation.adjoints:
            for term in adj.terms:
                if not is_elementwise(term.expr) or y not in term.expr.free_symbols:
                    continue
                factor = term.expr.as_independent(adjoint(term.source), as_Add=False)[0]
                if y not in factor.free_symbols:
                    continue
                for new, words in ((u, f"at {u}, the pre-activation, instead of at {y}"),
                                   (fn(y), f"at {stage.kind.name}({y}), the activation applied twice, "
                                           f"instead of at {y}")):
                    changed = term.expr.subs(factor, factor.subs(y, new))
                    yield _term_change(adj, term, changed,
                                       f"the factor {factor} of d_{adj.target} ({adj.label}: {term}) is "
                                       f"evaluated {words}")


def _wrong_source(derivation):
    """A branch d_src * factor that reads another, earlier adjoint of the same size instead
    of d_src (d_h where d_c belongs), or reads w = f(y) where y belongs (v = 1 - z for z)."""
    sizes = derivation.cell.sizes()
    earlier = []
    for adj in derivation.adjoints:
        for term in adj.terms:
            if not is_elementwise(term.expr):
                continue
            src = adjoint(term.source)
            for other in earlier:
                if other != term.source and sizes.get(other) == sizes.get(term.source):
                    yield _term_change(adj, term, term.expr.xreplace({src: adjoint(other)}),
                                       f"d_{adj.target} reads d_{other} where d_{term.source} belongs "
                                       f"({adj.label}: {term})")
            for stage, _ in unary(derivation.cell):
                y, w = value(stage.inputs[0]), value(stage.name)
                if y in term.expr.free_symbols and w not in term.expr.free_symbols:
                    yield _term_change(adj, term, term.expr.xreplace({y: w}),
                                       f"d_{adj.target} reads {w} = {stage.kind.name}({y}) where {y} belongs "
                                       f"({adj.label}: {term})")
                if w in term.expr.free_symbols and y not in term.expr.free_symbols:
                    yield _term_change(adj, term, term.expr.xreplace({w: y}),
                                       f"d_{adj.target} reads {y} where {w} = {stage.kind.name}({y}) belongs "
                                       f"({adj.label}: {term})")
            out = derivation.cell.output
            if src == adjoint(out) and out in derivation.cell.state_names:
                yield _term_change(adj, term, term.expr.xreplace({src: LossGrad(value(out))}),
                                   f"d_{adj.target} reads only this step's loss gradient dl_t/d{out} (dhs[t]) "
                                   f"where the whole d_{out} belongs ({adj.label}: {term})")
        earlier.append(adj.target)


def _part_dropped(derivation):
    """A local factor that is a product, with one of its parts left out (o of o*(1 - o))."""
    for adj in derivation.adjoints:
        for term in adj.terms:
            if not is_elementwise(term.expr) or term.expr == adjoint(term.source):
                continue
            factor = term.expr.as_independent(adjoint(term.source), as_Add=False)[0]
            parts = factor.args if factor.is_Mul else ()
            for part in dict.fromkeys(parts):
                rest = factor / part
                yield _term_change(adj, term, term.expr.subs(factor, rest),
                                   f"the factor {factor} of d_{adj.target} lacks its part {part}, leaving {rest} "
                                   f"({adj.label}: {term})")


BEFORE = "__before"   # a symbol named v + BEFORE is v at step t-1 (Python's wrap-around: at t=0 the last)


def _step_before(derivation):
    """Values read from step t-1's cache: a weight gradient's input, or a value in a branch."""
    inputs = {}
    for g in derivation.param_grads:
        if g.input:
            inputs.setdefault(g.input, []).append(g.param)
    for name, params in inputs.items():
        before = {value(name): value(name + BEFORE)}
        yield Hypothesis(f"d_{', d_'.join(params)} read {name} of step t-1 instead of step t's (a cache from the "
                         "wrong step)", lambda bw, t, T, ps=tuple(params), b=before: Backward(bw.adjoints, tuple(
                             (p, e.xreplace(b) if p in ps else e) for p, e in bw.params)))
    if len(inputs) > 1:
        before = {value(n): value(n + BEFORE) for n in inputs}
        yield Hypothesis(f"the weight gradients read {', '.join(inputs)} of step t-1 instead of step t's (the "
                         "cache of the wrong step)", lambda bw, t, T, b=before: bw.mapped(lambda e: e.xreplace(b),
                                                                                          targets=()))
    for adj in derivation.adjoints:
        for term in adj.terms:
            if not is_elementwise(term.expr):
                continue
            for v in sorted(term.expr.free_symbols - {adjoint(term.source)}, key=str):
                if not str(v).startswith("d_"):
                    yield _term_change(adj, term, term.expr.xreplace({v: value(str(v) + BEFORE)}),
                                       f"d_{adj.target} reads {v} of step t-1 instead of step t's "
                                       f"({adj.label}: {term})")


def _twice(derivation):
    """A branch of a fork counted twice."""
    for adj in derivation.adjoints:
        for term in adj.terms if adj.is_fork else ():
            yield _term_change(adj, term, 2 * term.expr,
                               f"d_{adj.target} counts its branch {term.branch!r} twice ({adj.label}: {term})")


def _term_change(adj, term, expr, text):
    def change(bw, t, T):
        return Backward(tuple(replace(a, terms=tuple(replace(x, expr=expr) if x.branch == term.branch else x
                                                     for x in a.terms)) if a.target == adj.target else a
                              for a in bw.adjoints), bw.params)
    return Hypothesis(text, change)


def _wrong_step(derivation):
    """s_prev read where this step's s belongs, and s where s_prev belongs."""
    for s in derivation.cell.state_names:
        old, new = value(f"{s}_prev"), value(s)
        for a, b, words in ((old, new, f"{s}, this step's new value, where {s}_prev belongs"),
                            (new, old, f"{s}_prev, the previous step's value, where this step's {s} belongs")):
            for adj in derivation.adjoints:
                for term in adj.terms:
                    if a in term.expr.free_symbols:
                        yield _term_change(adj, term, term.expr.xreplace({a: b}),
                                           f"d_{adj.target} reads {words} ({adj.label}: {term})")
            for g in derivation.param_grads:
                if a in g.expr.free_symbols:
                    yield Hypothesis(f"d_{g.param} reads {words} ({g.label}: sum {_text(g.expr)})",
                                     _param_change(g.param, lambda e, a=a, b=b: e.xreplace({a: b})))


def _param_change(param, fn):
    def change(bw, t, T):
        return Backward(bw.adjoints, tuple((p, fn(e) if p == param else e) for p, e in bw.params))
    return change


def _text(expr):
    return text(expr)


def siblings(cell):
    """Pairs of stages of the same kind and size (gates, their activations, products)."""
    sizes = cell.sizes()
    stages = cell.stages
    return [(a.name, b.name) for a, b in permutations(stages, 2)
            if a.kind is b.kind and sizes[a.name] == sizes[b.name]]


def _siblings(derivation):
    cell = derivation.cell
    pairs = siblings(cell)
    for a, b in pairs:
        da, db = adjoint(a), adjoint(b)
        if a < b:
            yield Hypothesis(f"the gradients d_{a} and d_{b} are swapped where they are used (their blocks "
                             "exchanged)", lambda bw, t, T, da=da, db=db: bw.mapped(
                                 lambda e: e.xreplace({da: db, db: da}), params=True))
        yield Hypothesis(f"d_{b}'s value is used where d_{a} belongs (the {b} gradient copied into {a}'s)",
                         lambda bw, t, T, da=da, db=db: bw.mapped(lambda e: e.xreplace({da: db})))
    for g in derivation.param_grads:
        if g.stage is None:
            continue
        for a, b in pairs:
            if a == g.stage:
                yield Hypothesis(f"d_{g.param} is computed from d_{b} instead of d_{a} ({g.label}: sum "
                                 f"{_text(g.expr)})", _param_change(g.param, lambda e, x=adjoint(a), y=adjoint(b):
                                                                    e.xreplace({x: y})))


# ----- evaluation ---------------------------------------------------------------------------

def forward_trace(derivation, problem):
    """Each step's forward values (and the derived outputs): run once per problem."""
    p = problem
    with np.errstate(all="ignore"):
        hs, stateT, *_, trace = run(derivation, p.params, p.xs, p.state0, p.dhs, p.dstateT)
    names = set(derivation.cell.input_names) | {f"{s}_prev" for s in derivation.cell.state_names}
    names |= {eq.stage.name for eq in derivation.forward} | set(derivation.cell.vector_param_names)
    return hs, stateT, [{k: v for k, v in step.items() if k in names} for step in trace]


def predict(derivation, problem, hypothesis: Hypothesis, trace) -> dict:
    """What code with `hypothesis`'s bug returns on `problem`, keyed like `compare.derived`."""
    cell, p = derivation.cell, problem
    hs, stateT, steps = trace
    whole, T = Backward.of(derivation), len(steps)
    carry, grads, dxs = dict(p.dstateT), {k: np.zeros_like(v) for k, v in p.params.items()}, [None] * T
    with np.errstate(all="ignore"):
        for t in reversed(range(T)):
            bw, values = hypothesis.change(whole, t, T), dict(steps[t])
            values.update({name + BEFORE: v for name, v in steps[t - 1].items()})
            loss = p.dhs[t + hypothesis.loss_shift] if t + hypothesis.loss_shift < T else p.dhs[t]
            env = dict(values, **p.params)
            for adj in bw.adjoints:
                total = sum((evaluate(x.expr, env, loss_grad=loss, carry=carry) for x in adj.terms), 0)
                env[f"d_{adj.target}"] = total
            carry = {s: env[f"d_{s}_prev"] for s in cell.state_names}
            at = hypothesis.steps is None or t == {"first": 0, "last": T - 1}[hypothesis.steps]
            for param, expr in bw.params:
                step = evaluate(expr, env, carry=carry)
                # a weight's step is already summed over the batch rows (an outer product)
                step = step if np.shape(step) == grads[param].shape else np.sum(step, axis=0)
                keep = at or (hypothesis.only and param not in hypothesis.only)
                grads[param] = grads[param] + step if keep else grads[param]
            dxs[t] = env[f"d_{cell.input_names[0]}"] * np.ones_like(p.xs[t])
    out = {"hs": hs, **{f"{s}_T": stateT[s] for s in cell.state_names}, "xs": np.stack(dxs)}
    out.update({f"{s}_0": carry[s] * np.ones_like(p.state0[s]) for s in cell.state_names})
    out.update(grads)
    return out


def pairs(found):
    """Pairs of hypotheses that can be applied together (both change the backward)."""
    return [(a, b) for a, b in combinations(found, 2) if not (a.steps and b.steps)
            and not (a.loss_shift and b.loss_shift)]


def both(a: Hypothesis, b: Hypothesis) -> Hypothesis:
    return Hypothesis(f"{a.text}; and {b.text}", lambda bw, t, T: b.change(a.change(bw, t, T), t, T),
                      a.steps or b.steps, a.loss_shift or b.loss_shift, a.only or b.only)

