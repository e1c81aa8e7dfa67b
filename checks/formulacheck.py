"""The verdict on hand-written formulas: equal (proved, or at exact random points) or different.

`check_formulas` takes the formulas one at a time: it parses each and evaluates it at
POINTS random points of `checks.points` (a bad formula, or one that is not a finite real
number at enough points, is its own one-line error and the others still run; a point
where only some formulas are singular, like d_h / d_h where d_h = 0, is replaced by the
next one for them), then prints for each formula the derived equation, the verdict and, when they
differ, the difference: for elementwise formulas the simplified SymPy difference in the
derivation's names, for formulas with matrix products the terms that are missing,
extra, negated or transposed; then a one-element numeric counterexample.

SymPy's part (the proof and the named difference) runs under a time budget
(`checks.budget`, PROOF_SECONDS per formula); when it runs out the verdict rests on the
points, matched term by term, and says so.  Every formula is answered in a few seconds.
"""
from __future__ import annotations

import ast
import sys

import mpmath
import numpy as np
import sympy as sp

from checks.budget import OverBudget, limited
from derive.terms import Carried, LossGrad, TermPrinter, is_elementwise
from checks.diagnose import relation
from derive.errors import DeriveError
from checks.formula import names_of, parse
from checks.formulahints import hints
from checks.points import DPS, POINTS, POOL, SIZES, Points, ShapeError, Singular, evaluate
from derive.interpret import term_value

TOLERANCE = mpmath.mpf("1e-30")
MAX_PROOF_OPS = 600
PROOF_SECONDS = 4.0


def check_formulas(derivation, formulas, out, err=None) -> int:
    """Check (where, text) formulas, printing verdicts with `out` and, for a formula that
    cannot be checked, its one-line error with `err` (stderr by default); the rest still
    run.  The worst status: 2 if any could not be checked, else 1 if any differs, else 0."""
    err = err or (lambda line: print(line, file=sys.stderr))
    names = names_of(derivation)
    pool = Points(derivation)
    status = 0
    for where, text in formulas:
        try:
            lhs, tree = parse(text, names, where)
            with mpmath.workdps(DPS):
                envs, values = _evaluate_or_fail(derivation.cell, tree, pool, where, text)
                lines, equal = check(derivation, lhs, tree, envs, values)
        except DeriveError as error:
            err(f"lstm-derive: error: {error}")
            status = 2
            continue
        out("\n".join(lines))
        status = max(status, 0 if equal else 1)
    return status


def _evaluate_or_fail(cell, tree, pool, where, text):
    """(environments, values) at the first POINTS points where the formula is finite."""
    envs, values, singular, i = [], [], [], 0
    while len(envs) < POINTS:
        env = pool.get(i)
        i += 1
        if env is None:
            reason = singular[0] if singular else "the derivation is not finite there"
            raise DeriveError(f"{where}: {text.strip()[:60]!r}: cannot be checked: a finite real value "
                              f"at only {len(envs)} of {POOL} random points ({reason})")
        try:
            values.append(evaluate(tree, env))
            envs.append(env)
        except ShapeError as err:
            raise DeriveError(f"{where}: {text.strip()[:60]!r}: shape mismatch in {err} "
                              f"(at {_sizes(cell)})") from None
        except Singular as err:
            singular.append(str(err))
    return envs, values


def derived_terms(derivation, name):
    """(label, [(text, term-or-None)]) of the derived equation for `name`."""
    for adj in derivation.adjoints:
        if f"d_{adj.target}" == name:
            return adj.label, [(_term_text(t, adj.target), t) for t in adj.terms]
    g = next(g for g in derivation.param_grads if f"d_{g.param}" == name)
    if g.stage is None:
        return g.label, [(_term_text(t, g.param), t) for t in g.terms]
    return g.label, [(f"d_{g.stage} @ {g.input}.T" if g.input else f"d_{g.stage}", None)]


class _FormulaPrinter(TermPrinter):
    """Backward terms in the names a formula uses: dL_dh (the loss's own), d_h_next (carried)."""

    def _print_LossGrad(self, e):
        return f"dL_d{self._print(e.args[0])}"

    def _print_Carried(self, e):
        return f"d_{self._print(e.args[0])}_next"


def _term_text(term, target):
    return _FormulaPrinter({"order": "none"}).doprint(term.expr)


def _as_formula(expr):
    """`expr` with loss and carried terms as the symbols formulas use for them."""
    nodes = expr.atoms(LossGrad, Carried)
    return expr.xreplace({n: sp.Symbol(_FormulaPrinter().doprint(n), real=True) for n in nodes})


def check(derivation, lhs, tree, envs, values):
    """(lines, equal) for one parsed formula whose right side is `values` at `envs`."""
    label, terms = derived_terms(derivation, lhs)
    lines = [f"{lhs} = {ast.unparse(tree)}",
             f"  derived ({label}): {lhs} = {' + '.join(t for t, _ in terms) or '0'}"]
    yours = [_like(v, env[lhs]) for v, env in zip(values, envs)]
    want = [env[lhs] for env in envs]
    if yours[0].shape != want[0].shape:
        note = " (its transpose is right)" if all(_same(y.T, w) for y, w in zip(yours, want)) else ""
        lines.append(f"  different: yours has shape {yours[0].shape}, {lhs} has {want[0].shape}{note} "
                     f"(at {_sizes(derivation.cell)})")
        return lines, False
    equal = all(_same(y, w) for y, w in zip(yours, want))
    proof, slow = _proof(derivation, lhs, tree, equal, envs[0], yours[0], want[0])
    if equal:
        how = ("proved symbolically (elementwise: the difference simplifies to 0)" if proof and proof[1]
               else f"at {len(envs)} random rational points ({_sizes(derivation.cell)}, {DPS} digits); "
               + ("no symbolic proof found" if proof else f"no symbolic proof: SymPy {slow}" if slow
                  else "not proved symbolically (not elementwise: matrix products or sums)"))
        lines.append(f"  equal: {how}")
        return lines, True
    lines += ([f"  different: yours - derived = {proof[0]}"] + [f"  hint: {h}" for h in proof[3]] if proof
              else _term_difference(derivation, lhs, tree, terms, envs[0]))
    if slow:
        lines.append(f"  (SymPy {slow}, so the difference is matched term by term)")
    hint = relation([(None, _floats(yours[0]), _floats(want[0]))], 1e-9, 1e-12)
    if hint:
        lines.append(f"  hint: yours {hint}")
    counter = proof[2] if proof else _counterexample(derivation.cell, envs[0], yours[0], want[0], None)
    lines.append("  counterexample: " + counter)
    return lines, False


def _proof(derivation, lhs, tree, equal, env, yours, want):
    """((named difference, proved?, counterexample), "") from SymPy; (None, "") for a
    formula that is not elementwise; (None, what happened) when SymPy ran out of budget.

    SymPy runs in a child process that is stopped after PROOF_SECONDS.
    """
    if not _elementwise(derivation, tree, lhs):
        return None, ""
    try:
        return limited(_symbolic_report, derivation, lhs, tree, equal, env, yours, want,
                       seconds=PROOF_SECONDS), ""
    except OverBudget as err:
        return None, f"no symbolic proof: SymPy {err}"


def _symbolic_report(derivation, lhs, tree, equal, env, yours, want):
    named, proved = _symbolic(derivation, lhs, tree, equal)
    with mpmath.workdps(DPS):
        counter = None if equal else _counterexample(derivation.cell, env, yours, want, (named, proved))
    return named, proved, counter, [] if equal or proved else _hints(derivation, lhs, tree, named)


def _hints(derivation, lhs, tree, named):
    """`checks.formulahints` on yours and the derived side in the names you wrote."""
    yours = _to_sympy(tree)
    keep = {s.name for s in yours.free_symbols}
    return hints(yours, _expand(derivation, _definition(derivation, lhs), keep), named)


def _like(value, want):
    """A scalar result broadcast to the wanted shape."""
    if isinstance(value, np.ndarray):
        return value
    out = np.empty(want.shape, dtype=object)
    out.fill(value)
    return out


def _same(a, b):
    return a.shape == b.shape and all(abs(x - y) <= TOLERANCE * (1 + abs(y)) for x, y in zip(a.flat, b.flat))


def _floats(a):
    return np.vectorize(float, otypes=[np.float64])(a)


def _sizes(cell):
    used = set(cell.sizes().values()) | {s for _, shape in cell.params() for s in shape}
    return "one step, one sample, " + ", ".join(f"{k}={v}" for k, v in SIZES.items() if k in used)


# ----- the elementwise case: scalar SymPy ---------------------------------------------------

def _elementwise(derivation, tree, lhs):
    matrices = {p for p, shape in derivation.cell.params() if len(shape) == 2}
    matrices |= {f"d_{p}" for p in matrices}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) or (isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult)):
            return False
        if (isinstance(node, ast.Call) and node.func.id == "sum") or (
                isinstance(node, ast.Name) and node.id in matrices):
            return False
    return _definition(derivation, lhs) is not None


def _definition(derivation, name):
    """The derived scalar expression of `name`, or None if it involves matrices."""
    for adj in derivation.adjoints:
        if f"d_{adj.target}" == name:
            return _scalar_sum(adj.terms, adj.target)
    g = next(g for g in derivation.param_grads if f"d_{g.param}" == name)
    if g.stage is None:
        return _scalar_sum(g.terms, g.param)
    return None if g.input else sp.Symbol(f"d_{g.stage}", real=True)


def _scalar_sum(terms, target):
    """The terms' sum as scalar maths per element, or None if one needs a matrix."""
    total = _as_formula(sp.Add(*(t.expr for t in terms)))
    return total if is_elementwise(total) else None


_FUNCTIONS = {"sigmoid": lambda x: 1 / (1 + sp.exp(-x)), "tanh": sp.tanh, "exp": sp.exp, "log": sp.log}


def _to_sympy(node):
    if isinstance(node, ast.Constant):
        return sp.nsimplify(node.value, rational=True)
    if isinstance(node, ast.Name):
        return sp.Symbol(node.id, real=True)
    if isinstance(node, ast.UnaryOp):
        value = _to_sympy(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Call):
        return _FUNCTIONS[node.func.id](_to_sympy(node.args[0]))
    left, right = _to_sympy(node.left), _to_sympy(node.right)
    ops = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b}
    return ops[type(node.op)](left, right)


def _expand(derivation, expr, keep):
    """Replace adjoints not in `keep` by their (scalar) definitions, until none is left."""
    for _ in range(len(derivation.adjoints) + 1):
        subs = {}
        for s in expr.free_symbols:
            if s.name.startswith("d_") and s.name not in keep and any(
                    f"d_{a.target}" == s.name for a in derivation.adjoints):
                definition = _definition(derivation, s.name)
                if definition is not None:
                    subs[s] = definition
        if not subs:
            return expr
        expr = expr.subs(subs, simultaneous=True)
    return expr


def _symbolic(derivation, lhs, tree, attempt_proof):
    """(difference in the derivation's names, proved equal?).

    When the names alone do not cancel and the points say equal, every stage output is
    replaced by its definition and SymPy simplifies (skipped for very large expressions).
    """
    yours = _to_sympy(tree)
    keep = {s.name for s in yours.free_symbols}
    named = sp.simplify(yours - _expand(derivation, _definition(derivation, lhs), keep))
    if named == 0 or not attempt_proof:
        return named, named == 0
    full = _expand(derivation, yours, set()) - _expand(derivation, _definition(derivation, lhs), set())
    for _ in derivation.forward:   # each stage output by its definition, down to affine outputs
        full = full.subs({sp.Symbol(eq.stage.name, real=True): eq.numeric
                          for eq in derivation.forward if eq.numeric is not None})
    if sp.count_ops(full) > MAX_PROOF_OPS:
        return named, False
    return named, sp.simplify(full.rewrite(sp.exp)) == 0


# ----- the matrix case: term by term --------------------------------------------------------

def _signed_terms(node, sign=1):
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        right = sign if isinstance(node.op, ast.Add) else -sign
        return _signed_terms(node.left, sign) + _signed_terms(node.right, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _signed_terms(node.operand, -sign)
    return [(sign, node)]


def _term_difference(derivation, lhs, tree, terms, env):
    """Lines: yours - derived, after cancelling the terms both sides share, and why."""
    want = env[lhs]
    yours = [(("- " if s < 0 else "+ ") + ast.unparse(n), _like(s * evaluate(n, env), want))
             for s, n in _signed_terms(tree)]
    missing, negated, subtracted = [], [], []
    for text, term in terms:
        value = _derived_value(derivation, lhs, term, env)
        match = next((y for y in yours if _same(y[1], value)), None)
        flipped = None if match else next((y for y in yours if _same(y[1], -value)), None)
        if match or flipped:
            yours.remove(match or flipped)
        (negated if flipped else [] if match else missing).append(text)
        if not (match or flipped):   # a minus must apply to all of a term that is itself a sum
            sum_term = term is not None and isinstance(term.expr, sp.Add)
            subtracted.append(f"- ({text})" if sum_term else f"- {text}")
    parts = [t for t, _ in yours] + subtracted + [f"- 2*({t})" for t in negated]
    lines = ["  different: yours - derived = " + (" ".join(parts).removeprefix("+ ") or "0")]
    for what, items in (("missing from yours", missing), ("negated in yours", negated),
                        ("in yours but not in the derivation", [t.removeprefix("+ ") for t, _ in yours])):
        if items:
            lines.append(f"  {what}: {', '.join(items)}")
    return lines


def _derived_value(derivation, lhs, term, env):
    if term is None:
        return env[lhs]
    problem, values = env["__problem__"]
    target = lhs[2:]
    value = term_value(term, target, values, problem.params, problem.dstateT, problem.dhs[0], "mpmath")
    return np.asarray(value, dtype=object).reshape(-1, 1)


def _counterexample(cell, env, yours, want, proof):
    i = max(range(yours.size), key=lambda k: abs(yours.flat[k] - want.flat[k]))
    index = np.unravel_index(i, yours.shape)
    text = f"entry {tuple(int(k) for k in index)}: yours {float(yours[index]):.6g}, derived {float(want[index]):.6g}"
    if proof is None or len(proof[0].free_symbols) > 8:
        return f"{text} (at {_sizes(cell)})"
    at = {s: sp.Float(str(env[s.name][index[0], 0]), 15) for s in proof[0].free_symbols if s.name in env}
    shown = ", ".join(f"{s} = {float(v):.4g}" for s, v in sorted(at.items(), key=lambda kv: kv[0].name))
    return f"at {shown}: yours - derived = {float(proof[0].subs(at)):.6g}  ({text})"
