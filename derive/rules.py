"""The calculus of every stage kind, obtained by SymPy from the kind's definition.

The elementwise rows of the operations table (`derive.ops`) each define their kind as a
scalar SymPy expression of its arguments.  `derivative(kind, k)` differentiates the definition with respect to
argument k; for invertible activations the result is then rewritten in terms of the
stage's own output (sigmoid' -> s(1 - s), tanh' -> 1 - s^2) by solving the definition
for its argument and substituting, so the backward pass can reuse forward values.  The
steps of that rewriting are kept for the document.  Affine stages get their vector rule
from index notation in `affine_rule()`.  No derivative is written by hand here.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp
from sympy.simplify.simplify import factor_sum

from derive.errors import DeriveError
from derive.ops import CONSTANT, OPS, X, Y, Kind, Op
from derive.stages import Loss

OUT = sp.Symbol("s", real=True)  # stands for the stage's own output
DEFINITIONS = {op: op for op in OPS if op.elementwise}   # the elementwise rows, by kind


TARGET = sp.Symbol("t", real=True)  # the target of a loss head, elementwise
LOSSES = {
    Loss.SQUARED_ERROR: (X - TARGET) ** 2 / 2,
    Loss.CROSS_ENTROPY: -TARGET * sp.log(X),
}


def loss_gradient(loss: Loss) -> sp.Expr:
    """dL/dy of a loss head, per element, by SymPy (y is the symbol X)."""
    return sp.diff(LOSSES[loss], X)


@dataclass(frozen=True)
class Partial:
    """d(kind)/d(arg k); `expr` may use the output symbol `OUT`; `steps` for the document:
    (name, expression) pairs, each equal to the one before on the reals (the last may use
    `OUT`, standing for the definition)."""

    kind: Op
    arg: int
    expr: sp.Expr
    steps: tuple[tuple[str, sp.Expr], ...]


def definition(kind: Op) -> Op:
    """The row of an elementwise kind (its definition); a structural row has none."""
    if not kind.elementwise:
        raise DeriveError(f"stage kind {kind.name} has no elementwise definition")
    return kind


@lru_cache(maxsize=None)
def derivative(kind: Op, arg: int) -> Partial:
    """Differentiate the definition of `kind` with respect to its argument `arg`."""
    d = definition(kind)
    _check_numeric_form(kind, d)
    var = d.args[arg]
    raw = sp.diff(d.expr, var)
    steps = [("definition", d.expr), ("derivative", raw)]
    if not d.reuse_output:
        simpler = sp.simplify(raw)
        plain = simpler.has(sp.Piecewise) or sp.count_ops(simpler) > sp.count_ops(raw)
        return Partial(kind, arg, raw if plain else simpler, tuple(steps))
    inverse = _inverse(kind, d.expr, var)
    substituted = raw.subs(var, inverse)
    simplified = sp.simplify(substituted)
    rewritten = (sp.horner(sp.expand(simplified), OUT) if simplified.is_polynomial(OUT)
                 else simplified)
    if rewritten.has(var) or sp.simplify(rewritten.subs(OUT, d.expr) - raw) != 0:
        raise DeriveError(f"cannot rewrite the derivative of {kind.name} in terms of its output")
    # What the document shows: the derivative, the same function written around the
    # definition, then with the output's name for it.  Every step is an identity on the
    # reals; the inverse above (possibly a complex branch) only finds the rewriting.
    around = rewritten.subs(OUT, sp.UnevaluatedExpr(d.expr))
    if sp.latex(around) != sp.latex(raw):
        steps.append(("around the definition", around))
    if rewritten != around:
        steps.append(("in terms of output", rewritten))
    return Partial(kind, arg, rewritten, tuple(steps))


def _inverse(kind, expr, var):
    """The argument as a function of the output: solve expr = s, pick a real branch."""
    for candidate in sp.solve(sp.Eq(expr, OUT), var):
        if sp.simplify(expr.subs(var, candidate) - OUT) == 0:
            return candidate
    raise DeriveError(f"cannot invert the definition of {kind.name}")


def _check_numeric_form(kind, d):
    """The stable form must equal the definition: symbolically, or else to 40 digits at many points."""
    if d.numeric == d.expr or sp.simplify((d.expr - d.numeric).rewrite(sp.exp)) == 0:
        return
    points = [sp.Rational(n, 3) for n in range(-60, 61, 7)]
    for x in points:
        subs = {X: x, Y: sp.Rational(7, 5), CONSTANT: sp.Rational(3, 2)}
        gap = sp.N(d.expr.subs(subs) - d.numeric.subs(subs), 50)
        if abs(gap) > sp.Float("1e-40"):
            raise DeriveError(f"numeric form of {kind.name} differs from its definition at x = {x}")


# ----- affine stages: the vector rule from index notation --------------------------------

@dataclass(frozen=True)
class AffineRule:
    """Index-notation derivation of `a[k] = sum_j W[k, j] x[j] + b[k]`.

    `d_weight[p, q]`, `d_input[q]` and `d_bias[p]` are the adjoint contractions
    sum_k delta[k] * da[k]/d(.) as SymPy leaves them after summing out the deltas.
    """

    definition: sp.Expr
    d_weight: sp.Expr
    d_input: sp.Expr
    d_bias: sp.Expr
    symbols: dict


@lru_cache(maxsize=None)
def affine_rule() -> AffineRule:
    """Derive dW = delta x^T, dx = W^T delta, db = delta and verify those vector forms."""
    n_out, n_in = sp.symbols("H D", integer=True, positive=True)
    k, j, p = sp.Idx("k", n_out), sp.Idx("j", n_in), sp.Idx("p", n_out)
    q = sp.Idx("q", n_in)
    W, x, b, delta = (sp.IndexedBase(n) for n in ("W", "x", "b", "delta"))
    a_k = sp.Sum(W[k, j] * x[j], (j, 0, n_in - 1)) + b[k]

    def contract(wrt):
        return _sum_out(sp.Sum(delta[k] * sp.diff(a_k, wrt), (k, 0, n_out - 1)))

    rule = AffineRule(a_k, contract(W[p, q]), contract(x[q]), contract(b[p]),
                      dict(k=k, j=j, p=p, q=q, W=W, x=x, b=b, delta=delta, H=n_out, D=n_in))
    _recognise(rule)
    return rule


def _sum_out(expr):
    """Evaluate sums of Kronecker deltas, dropping range guards that the indices satisfy."""
    for _ in range(4):
        expr = expr.doit()
        guards = list(expr.atoms(sp.Piecewise))
        if not guards:
            return expr
        expr = expr.xreplace({g: _unguard(g) for g in guards})
    raise DeriveError("index rule: summation did not terminate")


def _unguard(piecewise):
    """The branch of a range guard that holds whenever every index lies in its range."""
    (value, cond), *_ = piecewise.args
    indices = [s for s in cond.free_symbols if isinstance(s, sp.Idx)]
    for bound in ("lower", "upper"):
        if cond.subs({i: getattr(i, bound) for i in indices}) is not sp.true:
            raise DeriveError(f"index rule: cannot show {cond} within index ranges")
    return value


def _recognise(rule):
    """Check the derived index forms are exactly the vector rules the code uses."""
    s = rule.symbols
    outer = s["delta"][s["p"]] * s["x"][s["q"]]
    transposed = sp.Sum(s["W"][s["k"], s["q"]] * s["delta"][s["k"]], (s["k"], 0, s["H"] - 1))
    checks = [(rule.d_weight, outer, "dW = delta x^T"),
              (rule.d_input, transposed, "dx = W^T delta"),
              (rule.d_bias, s["delta"][s["p"]], "db = delta")]
    for got, want, name in checks:
        if sp.simplify(got - want) != 0:
            raise DeriveError(f"affine rule {name} not recognised in {got}")


# ----- softmax: the vector-Jacobian product from index notation -------------------------

@dataclass(frozen=True)
class SoftmaxRule:
    """`y[k] = exp(a[k]) / sum_j exp(a[j])`: Jacobian in terms of y, and its contraction."""

    definition: sp.Expr
    jacobian: sp.Expr      # dy[k]/da[q], rewritten in terms of y
    d_input: sp.Expr       # sum_k delta[k] dy[k]/da[q]
    cross_entropy: sp.Expr  # d(-sum_k t[k] log y[k])/da[q] with sum_k t[k] = 1
    symbols: dict


@lru_cache(maxsize=None)
def softmax_rule() -> SoftmaxRule:
    """Derive d_a = y * (d_y - sum(d_y * y)) and the cross-entropy logit gradient y - t."""
    n = sp.Symbol("n", integer=True, positive=True)
    k, j, q = sp.Idx("k", n), sp.Idx("j", n), sp.Idx("q", n)
    a, y, delta, t = (sp.IndexedBase(name) for name in ("a", "y", "delta", "t"))
    total = sp.Sum(sp.exp(a[j]), (j, 0, n - 1))
    y_k = sp.exp(a[k]) / total

    def in_terms_of_y(expr):  # exp(a_k) = y_k * sum_j exp(a_j), for the free indices only
        return expr.xreplace({sp.exp(a[i]): y[i] * total for i in (k, q)})

    jacobian = in_terms_of_y(_sum_out(sp.diff(y_k, a[q])))
    d_input = _sum_out(sp.Sum(delta[k] * jacobian, (k, 0, n - 1)))
    loss = sp.Sum(-t[k] * sp.expand_log(sp.log(y_k), force=True), (k, 0, n - 1))
    logits = in_terms_of_y(_sum_out(sp.diff(loss, a[q])))
    logits = sp.expand(logits).replace(lambda e: isinstance(e, sp.Sum), factor_sum)
    logits = logits.subs(sp.Sum(t[k], (k, 0, n - 1)), 1)  # a one-hot target sums to one
    rule = SoftmaxRule(y_k, jacobian, d_input, logits,
                       dict(k=k, q=q, a=a, y=y, delta=delta, t=t, n=n))
    _recognise_softmax(rule)
    return rule


def _recognise_softmax(rule):
    s = rule.symbols
    k, q, y, delta, t = s["k"], s["q"], s["y"], s["delta"], s["t"]
    vjp = y[q] * (delta[q] - sp.Sum(delta[k] * y[k], (k, 0, s["n"] - 1)))
    if sp.simplify(sp.expand(rule.d_input - vjp)) != 0:
        raise DeriveError(f"softmax rule d_a = y*(d_y - sum(d_y*y)) not recognised in {rule.d_input}")
    if sp.simplify(rule.cross_entropy - (y[q] - t[q])) != 0:
        raise DeriveError(f"softmax cross-entropy rule y - t not recognised in {rule.cross_entropy}")


# ----- mean of stacked rows: the vector-Jacobian product from index notation -------------

@dataclass(frozen=True)
class MeanRule:
    """`y[k] = mu = (1/(m H)) sum_b sum_j z[b, j]` for every k < H: the mean of m stacked
    vectors of H entries each, broadcast back to H entries (a layer norm's mean and variance)."""

    definition: sp.Expr
    d_input: sp.Expr        # sum_k delta[k] dy[k]/dz[c, q]: what block c receives
    symbols: dict


@lru_cache(maxsize=None)
def mean_rule() -> MeanRule:
    """Derive d_z[c] = mean(delta) / m for every block c, and verify that vector form."""
    m, n = sp.symbols("m H", integer=True, positive=True)
    b, c = sp.Idx("b", m), sp.Idx("c", m)
    j, k, q = sp.Idx("j", n), sp.Idx("k", n), sp.Idx("q", n)
    z, delta = sp.IndexedBase("z"), sp.IndexedBase("delta")
    mu = sp.Sum(sp.Sum(z[b, j], (j, 0, n - 1)), (b, 0, m - 1)) / (m * n)
    d_input = _sum_out(sp.Sum(delta[k] * sp.diff(mu, z[c, q]), (k, 0, n - 1)))
    rule = MeanRule(mu, d_input, dict(b=b, c=c, j=j, k=k, q=q, z=z, delta=delta, m=m, H=n))
    want = sp.Sum(delta[k], (k, 0, n - 1)) / (m * n)   # (1/m) times the mean of delta over its H entries
    if sp.simplify(d_input - want) != 0:
        raise DeriveError(f"mean rule d_z = mean(delta)/m not recognised in {d_input}")
    return rule


# ----- the layer norm as a whole: what its stages compose to, from index notation --------

@dataclass(frozen=True)
class LayerNormRule:
    """`y[k] = gamma[k] (z[k] - mu) r + beta[k]` with mu = (1/n) sum_j z[j], v = (1/n)
    sum_i (z[i] - mu)^2 and r = 1/sqrt(v + eps): its Jacobian and its contraction.

    A cell computes a layer norm in stages (two means, squared deviations, an inverse square
    root, the normalised output), each differentiated on its own; this is the same
    derivative derived in one piece, which the document shows and the tests compare with
    the chain through the stages."""

    definition: sp.Expr
    jacobian: sp.Expr       # dy[k]/dz[q], written with mu and r
    d_input: sp.Expr        # sum_k delta[k] dy[k]/dz[q]
    vector: sp.Expr         # r (g[q] - mean(g) - zhat[q] mean(g zhat)), g = gamma delta, zhat = (z - mu) r
    symbols: dict


@lru_cache(maxsize=None)
def layer_norm_rule() -> LayerNormRule:
    """Differentiate the layer norm in index notation, mean and variance as sums over the row."""
    n = sp.Symbol("n", integer=True, positive=True)
    eps = sp.Symbol("epsilon", positive=True)
    k, j, q, i = (sp.Idx(s, n) for s in "kjqi")
    z, gamma, beta, delta = (sp.IndexedBase(s) for s in ("z", "gamma", "beta", "delta"))
    mu, v, r = sp.Symbol("mu", real=True), sp.Symbol("v", real=True), sp.Symbol("r", positive=True)
    mean = sp.Sum(z[j], (j, 0, n - 1)) / n
    variance = sp.Sum((z[i] - mean) ** 2, (i, 0, n - 1)) / n
    y_k = gamma[k] * (z[k] - mean) / sp.sqrt(variance + eps) + beta[k]

    def named(expr):   # the statistics by their names; sum_i z[i] = n mu
        expr = sp.expand(expr.subs(v, r ** -2 - eps)).replace(lambda s: isinstance(s, sp.Sum), _pull_constants)
        expr = expr.subs(sp.Sum(z[i], (i, 0, n - 1)), n * mu)
        return sp.expand(expr.subs(v, r ** -2 - eps))   # v + eps = 1/r^2

    zhat = lambda m: (z[m] - mu) * r   # noqa: E731 (the normalised entry m)
    raw = named(_sum_out(sp.diff(y_k, z[q])).subs(variance, v).subs(mean, mu))
    jacobian = r * gamma[k] * (sp.KroneckerDelta(k, q) - (1 + zhat(k) * zhat(q)) / n)
    if sp.simplify(raw - jacobian) != 0:
        raise DeriveError(f"layer norm Jacobian r gamma (delta - (1 + zhat zhat)/n) not recognised in {raw}")
    d_input = named(_sum_out(sp.Sum(delta[k] * raw, (k, 0, n - 1))))
    vector = r * (gamma[q] * delta[q] - sp.Sum(gamma[k] * delta[k], (k, 0, n - 1)) / n
                  - zhat(q) * sp.Sum(gamma[k] * delta[k] * zhat(k), (k, 0, n - 1)) / n)
    if sp.simplify(named(d_input - vector)) != 0:
        raise DeriveError(f"layer norm rule r(g - mean g - zhat mean(g zhat)) not recognised in {d_input}")
    return LayerNormRule(y_k, jacobian, d_input, vector,
                         dict(n=n, k=k, q=q, z=z, gamma=gamma, beta=beta, delta=delta, mu=mu, r=r,
                              eps=eps))


def _pull_constants(s):
    """A sum with the factors free of its index taken out (evaluated where SymPy can)."""
    return factor_sum(sp.Sum(sp.expand(s.function), *s.limits).doit())
