"""What is wrong, as precisely as the evidence allows, after `checks.compare` disagreed.

In order: (1) whether the forward outputs already differ (then the forward is the bug
and the gradients say nothing more); (2) which gradients differ; (3) simple relations
per gradient — transposed, negated, zero, scaled by a constant; (4) one-change
derivations: the derivation with exactly one fork term dropped, or one branch's local
factor dropped, run through `derive.interpret`; if one of them reproduces all of the
user's numbers, the missing term is named as in the document; (5) for recurrent cells,
time localisation: the same parameters on sequences of T = 1, 2, 3, 4 steps with nothing
carried into the last step, then T = 1 with the gradient of one final state given, to
tell a bug inside one step from one in the recurrent path.
"""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np
import sympy as sp

from checks.compare import close, differing, expected_shapes, fitted, make_problem
from checks.hypotheses import Backward, Hypothesis
from checks.search import backward_bugs, forward_bugs
from derive.derivation import NEXT_STEP_BRANCH
from derive.terms import adjoint, is_elementwise

MAX_T = 4


def diagnose(comparison, derivation, runner, rtol, atol) -> list[str]:
    """Lines of explanation for a comparison with at least one disagreement."""
    cell = comparison.cell
    forward = comparison.disagreeing(forward=True)
    if forward:
        return _forward_story(comparison, forward) + [f"  hint: {text}" for text in
                                                     forward_bugs(comparison, derivation, rtol, atol)]
    grads = comparison.disagreeing(forward=False)
    lines = [f"forward outputs agree; gradients that differ: {', '.join(grads)}"]
    for name in grads:
        hint = relation(comparison.rows[name].failures, rtol, atol)
        if hint:
            lines.append(f"  hint: {_quantity(cell, name)} {hint}")
    found = one_change(comparison, derivation, rtol, atol)
    lines += [f"  hint: {text}" for text in found] or [
        "  no change to the derivation that compare tries (a dropped term, factor or sign, a value "
        "from the wrong step or point, a gradient copied or swapped, one step's parameter "
        "gradients, or two of these) reproduces your numbers"]
    if cell.recurrent:
        lines += localise(comparison, derivation, runner, rtol, atol, named=bool(found))
    return lines


def _forward_story(comparison, names):
    lines = [f"the forward pass already differs ({', '.join(names)}): fix the forward first; "
             "gradients of a different function cannot be compared"]
    if "hs" in names:
        problem, got, want = comparison.rows["hs"].failures[0]
        steps = [t for t in range(problem.T) if not np.allclose(got[t], want[t])]
        if steps:
            lines.append(f"  hs first differs at step t={steps[0]} (counting from 0) at {problem.describe()}")
    return lines


def _quantity(cell, name):
    if name in ("xs", "x"):
        return f"the input gradient d{name}"
    if name.endswith("_0") and name[:-2] in cell.state_names:
        return f"the initial-state gradient dstate0[{name[:-2]!r}]"
    return f"d_{name}"


def relation(failures, rtol, atol) -> str | None:
    """A simple relation between yours and the derived array that holds in every failure."""
    for test in (_transposed, _transposed_shape, _zero, _negated, _scaled):
        found = [test(got, want, rtol, atol) for _, got, want in failures]
        if all(found) and len(set(found)) == 1:
            return found[0]
    return None


def _transposed_shape(got, want, rtol, atol):
    return "has the transposed shape, and its values differ too" if got.shape != want.shape else None


def _zero(got, want, rtol, atol):
    return "is zero everywhere" if got.shape == want.shape and np.all(np.abs(got) <= atol) else None


def _transposed(got, want, rtol, atol):
    """Also for square gradients, whose transpose has the same shape."""
    fits = got.ndim == 2 and got.shape == want.shape[::-1]
    return "is the derived gradient transposed" if fits and close(got.T, want, rtol, atol) else None


def _negated(got, want, rtol, atol):
    return "is the derived gradient negated" if close(got, -want, rtol, atol) else None


def _scaled(got, want, rtol, atol):
    norm = float(np.vdot(want, want))
    if got.shape != want.shape or norm == 0:
        return None
    c = float(np.vdot(got, want)) / norm
    simple = float(Fraction(c).limit_denominator(64))   # 0.5 rather than 0.49999999997
    rounded = simple if abs(simple - c) <= 1e-9 * max(1.0, abs(c)) else c
    ok = close(got, rounded * want, rtol, atol)
    return f"is the derived gradient scaled by {rounded:.6g}" if ok else None


def variants(derivation):
    """(description, derivation with one change): each fork term dropped; each local
    branch with its factor dropped or its sign flipped."""
    for n, adj in enumerate(derivation.adjoints):
        for k, term in enumerate(adj.terms):
            changed = []
            if adj.is_fork:
                changed.append((f"d_{adj.target} is missing the branch {term.branch!r} "
                                f"({adj.label}: {_term_text(term)})", adj.terms[:k] + adj.terms[k + 1:]))
            local = is_elementwise(term.expr)   # d_source * (its local partial)
            factor = term.expr.as_independent(adjoint(term.source), as_Add=False)[0] if local else None
            if local and factor != 1:
                changed.append((f"d_{adj.target} lacks the factor ({factor}) of its branch "
                                f"{term.branch!r} ({adj.label}: {term})",
                                adj.terms[:k] + (replace(term, expr=adjoint(term.source)),) + adj.terms[k + 1:]))
            if local:
                changed.append((f"the branch {term.branch!r} of d_{adj.target} has the wrong sign "
                                f"({adj.label}: {term})",
                                adj.terms[:k] + (replace(term, expr=-term.expr),) + adj.terms[k + 1:]))
            for text, terms in changed:
                adjoints = derivation.adjoints[:n] + (replace(adj, terms=terms),) + derivation.adjoints[n + 1:]
                yield text, replace(derivation, adjoints=adjoints)
    for n, g in enumerate(derivation.param_grads):
        for k, term in enumerate(g.terms if len(g.terms) > 1 else ()):
            grads = (derivation.param_grads[:n] + (replace(g, terms=g.terms[:k] + g.terms[k + 1:]),)
                     + derivation.param_grads[n + 1:])
            yield (f"d_{g.param} is missing the branch {term.branch!r} ({g.label}: {term})",
                   replace(derivation, param_grads=grads))


def _term_text(term):
    if term.branch == NEXT_STEP_BRANCH:
        return f"{term}, the gradient carried back from step t+1"
    return str(term)


def one_change(comparison, derivation, rtol, atol) -> list[str]:
    """Descriptions of the changed derivations (`variants`, then `checks.hypotheses`, alone
    or two at once) that reproduce all of the user's numbers."""
    extra = [Hypothesis(text, lambda bw, t, T, v=variant: Backward.of(v))
             for text, variant in variants(derivation)]
    return backward_bugs(comparison, derivation, extra, relation, rtol, atol)


def localise(comparison, derivation, runner, rtol, atol, named=False) -> list[str]:
    """Growing sequences on the same parameters: in one step, at the carry, or across steps."""
    cell = comparison.cell
    base = comparison.runs[0][0]
    base = make_problem(cell, MAX_T, base.B, base.sizes, seed=99)
    states = cell.state_names
    lines = ["time localisation (same parameters; nothing carried into the last step unless said):"]
    results = {}
    contract = getattr(runner, "contract", None)
    given = [s for s in states if contract is None or s not in contract.zero_final]   # code that takes dL/ds_T
    cases = [(T, ()) for T in range(1, MAX_T + 1)] + [(1, (s,)) for s in given]
    for T, carry in cases:
        problem, want = fitted(derivation, runner, base.head(T, carry))
        got = runner.run(problem, expected_shapes(cell, problem))
        results[T, carry] = (differing(got, want, rtol, atol), got, want)
        label = f"T={T}" + (f", dL/d{carry[0]}_T given" if carry else "")
        names = results[T, carry][0]
        lines.append(f"  {label:<22}{'differs: ' + ', '.join(names) if names else 'agree'}")
    lines.append("  => " + _verdict(results, states, named))
    carried = [T for T in range(1, MAX_T + 1) if any(f"{s}_0" in results[T, ()][0] for s in states)]
    if carried:
        lines.append(f"  the carried state gradients first disagree {carried[0]} step(s) back from the end "
                     f"(dstate0 of the T={carried[0]} sequence)")
    lines += _steps_back(results[MAX_T, ()], rtol, atol)
    return lines


def _verdict(results, states, named=False):
    first = results[1, ()][0]
    carried = [f"{s}_0" for s in states]
    inner = [n for n in first if n not in carried]
    if inner:
        return (f"the bug is inside one step: with T=1 and nothing carried in, {', '.join(inner)} "
                "already differ")
    if first:
        return (f"the bug is inside one step, in the gradient it passes back to the previous step "
                f"({', '.join(first)}); everything else of a single step agrees")
    bad = [s for s in states if (1, (s,)) in results and results[1, (s,)][0]]
    if bad:
        return (f"a single step is right, but it mishandles the gradient of {', '.join(bad)} carried "
                "in from the next step (it differs as soon as that gradient is not zero)")
    later = [T for T in range(2, MAX_T + 1) if results[T, ()][0]]
    if later:
        back = min(T for T in later)
        guess = "" if named else (": the bug is in the recurrent path between steps (e.g. an off-by-one "
                                  "in time or values cached for the wrong step)")
        return f"every single step is right, but gradients disagree once {back} steps are chained{guess}"
    return f"no disagreement on sequences of up to {MAX_T} steps at this shape; see the table"


def _steps_back(result, rtol, atol):
    """Counting back from the end: where dxs and the carried gradients first go wrong."""
    names, got, want = result
    lines = []
    if "xs" not in got:   # not checked: the code returns no dxs
        return lines
    steps = [k for k in range(1, MAX_T + 1) if not close(got["xs"][MAX_T - k], want["xs"][MAX_T - k], rtol, atol)]
    if steps:
        lines.append(f"  dxs at T={MAX_T} first differs {steps[0]} step(s) back from the end "
                     f"(t={MAX_T - steps[0]}, counting from 0)")
    return lines
