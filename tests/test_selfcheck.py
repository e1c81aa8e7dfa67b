"""Symbolic self-check of the LSTM derivation, against brute-force SymPy differentiation.

The LSTM is written out here element by element in SymPy scalars, with no help from the
package (sigmoid(z) is spelled 1/(1+exp(-z)), tanh is sympy.tanh), for H=2 hidden units,
D=3 inputs, batch B=1, and the scalar loss

    L = sum_t sum_j R[t][j] h_t[j] + sum_j S_h[j] h_T[j] + sum_j S_c[j] c_T[j]

(R = dhs, S = dstateT) is differentiated with `sympy.diff`, one scalar at a time:

* with respect to every parameter, input and initial-state element (grads, dxs, dstate0);
* with respect to a perturbation symbol `eps` added to the definition of every
  intermediate value at every step and element (e.g. f_t[j] = sigmoid(a_f[j]) + eps),
  at eps = 0: this is dL/d(value at step t), the adjoint the derivation calls `d_<value>`.
  d_x at step t is dL/dx_t.  For d_h_prev / d_c_prev at step t the perturbation goes on
  the copy of h_{t-1} / c_{t-1} that step t reads (h_prev_t = h_{t-1} + eps): that is the
  gradient step t sends back, the carry.  It is NOT dL/d(eps on h or c at step t-1), the
  total derivative, which also holds the paths inside step t-1 (h_{t-1}'s own loss term,
  c_{t-1} -> k_{t-1} -> h_{t-1}); the package's d_h / d_c at step t-1 are checked against
  those totals.  At t = 0 d_h_prev / d_c_prev equal dL/dh_0, dL/dc_0 (dstate0).

Two brute-force references produce the same numbers (keys: see above `_nested_model`):

`nested_reference(T)` - the literal check: the whole unrolled loss as ONE nested SymPy
    expression, `sympy.diff` of it w.r.t. every scalar, lambdified (modules="mpmath",
    cse=True).  SymPy's derivative machinery walks expression *trees*, and the unrolled
    LSTM's tree grows about tenfold per step (h_{t-1} feeds 4 gates x H units), so this
    costs ~1 s for T=1, ~25 s for T=2 and ~9 minutes for T=3.  It runs by default for
    T=2 (one point); T=3 (both points) runs when the environment sets SELFCHECK_NESTED_T3=1.

`chained_reference(T)` - the same for T=3 in about a second: `sympy.diff` of ONE step
    written out element by element (outputs h_t, c_t w.r.t. h_{t-1}, c_{t-1}, x_t, every
    parameter and every eps of that step), evaluated at each step's point, then the
    derivative of L w.r.t. each scalar is accumulated *forwards* in time (forward-mode
    sensitivities d(h_t, c_t)/dz through the state, the plain chain rule) - a different
    route from the package's reverse sweep, sharing no code with it.  A default test also
    checks that both references agree for T=2.

Both are evaluated at random rational points (fixed seeds) with mpmath at 50 significant
digits, and every number `derive.interpret.run(..., module="mpmath")` returns - outputs,
final state, parameter gradients, dxs, dstate0, and every forward value and adjoint in the
trace - must agree to 1e-40 relative.  The last tests show the comparison does fail when a
single package number is off by one part in 1e30, or when the derivation is wrong.
"""
from __future__ import annotations

import dataclasses
import os
import random
from functools import lru_cache

import mpmath
import numpy as np
import pytest
import sympy as sp

from catalogue.cells import LSTM
from derive.derivation import NEXT_STEP_BRANCH, derive
from derive.interpret import run

H, D, B = 2, 3, 1
T_MAIN = 3                       # the sequence length of the main checks
DPS = 50                         # mpmath significant digits
RTOL = mpmath.mpf("1e-40")
ATOL = mpmath.mpf("1e-45")       # floor for values that are zero up to rounding
SEEDS = (20240601, 7)            # the two random rational points

GATES = ("f", "i", "g", "o")
PARAM_SHAPES = {**{f"W_{g}": (H, D) for g in GATES}, **{f"U_{g}": (H, H) for g in GATES},
                **{f"b_{g}": (H,) for g in GATES}}
PARAM_ELEMS = [(name, ix) for name, shape in PARAM_SHAPES.items() for ix in np.ndindex(*shape)]
# per-step values that get a perturbation symbol, in forward order
STEP_VALUES = ("a_f", "a_i", "a_g", "a_o", "f", "i", "g", "o", "m", "n", "c", "k", "h")
# ... and the state as read by the step (the copy of h_{t-1}, c_{t-1} that step t uses)
EPS_VALUES = ("h_prev", "c_prev") + STEP_VALUES
ADJOINTS = STEP_VALUES + ("c_prev", "h_prev", "x")


# ---------------------------------------------------------------------------------------
# The LSTM, element by element, written independently of the package
# ---------------------------------------------------------------------------------------

def _sym(*parts):
    # real=True is true of every value here, and it spares SymPy many assumption queries
    return sp.Symbol("_".join(str(p) for p in parts), real=True)


def _sigmoid(z):
    # evaluate=False: no automatic simplification attempts on the (large) argument
    return 1 / (1 + sp.exp(-z, evaluate=False))


def _tanh(z):
    return sp.tanh(z, evaluate=False)


def lstm_step(P, x, h_prev, c_prev, eps):
    """One LSTM step.  P[name][index] are parameter scalars, x (D,), h_prev and c_prev (H,)
    are lists of expressions, eps[name][j] is added to the definition of every value in
    EPS_VALUES.  Returns {name: [expression per element]} for EPS_VALUES."""
    s = {}

    def put(name, exprs):
        s[name] = [e + eps[name][j] for j, e in enumerate(exprs)]

    put("h_prev", h_prev)
    put("c_prev", c_prev)
    h_prev, c_prev = s["h_prev"], s["c_prev"]

    for g in GATES:
        put(f"a_{g}", [sum(P[f"W_{g}"][j, k] * x[k] for k in range(D))
                       + sum(P[f"U_{g}"][j, k] * h_prev[k] for k in range(H))
                       + P[f"b_{g}"][(j,)] for j in range(H)])
    put("f", [_sigmoid(a) for a in s["a_f"]])
    put("i", [_sigmoid(a) for a in s["a_i"]])
    put("g", [_tanh(a) for a in s["a_g"]])
    put("o", [_sigmoid(a) for a in s["a_o"]])
    put("m", [s["f"][j] * c_prev[j] for j in range(H)])
    put("n", [s["i"][j] * s["g"][j] for j in range(H)])
    put("c", [s["m"][j] + s["n"][j] for j in range(H)])
    put("k", [_tanh(s["c"][j]) for j in range(H)])
    put("h", [s["o"][j] * s["k"][j] for j in range(H)])
    return s


def _param_symbols():
    return {name: {ix: _sym(name, *ix) for ix in np.ndindex(*shape)}
            for name, shape in PARAM_SHAPES.items()}


# ---------------------------------------------------------------------------------------
# Random rational points
# ---------------------------------------------------------------------------------------

def _mpf(q):
    q = sp.Rational(q)
    return mpmath.mpf(int(q.p)) / int(q.q)


def _array(rng, shape, scale):
    out = np.empty(shape, dtype=object)
    for ix in np.ndindex(*shape):
        out[ix] = _mpf(sp.Rational(rng.randint(-9, 9), rng.randint(1, 9)) * scale)
    return out


@dataclasses.dataclass
class Point:
    """Inputs of one check, as object arrays of 50-digit mpf (rational values)."""

    params: dict        # name -> (H, D) / (H, H) / (H,)
    xs: np.ndarray      # (T, B, D)
    state0: dict        # "h"/"c" -> (B, H)
    dhs: np.ndarray     # (T, B, H), the R of the loss
    dstateT: dict       # "h"/"c" -> (B, H), the S of the loss

    @property
    def T(self):
        return len(self.xs)


@lru_cache(maxsize=None)
def point(seed, T=T_MAIN) -> Point:
    rng = random.Random(seed * 100 + T)
    with mpmath.workdps(DPS):
        # weights of size <= 9/4 over few terms and inputs <= 3: gates stay unsaturated
        params = {name: _array(rng, shape, sp.Rational(1, 4))
                  for name, shape in PARAM_SHAPES.items()}
        xs = _array(rng, (T, B, D), sp.Rational(1, 3))
        state0 = {"h": _array(rng, (B, H), sp.Rational(1, 5)),
                  "c": _array(rng, (B, H), sp.Rational(1, 2))}
        dhs = _array(rng, (T, B, H), 1)
        dstateT = {"h": _array(rng, (B, H), 1), "c": _array(rng, (B, H), 1)}
    return Point(params, xs, state0, dhs, dstateT)


# ---------------------------------------------------------------------------------------
# Reference 1: the whole unrolled loss as one SymPy expression, sympy.diff of it
# ---------------------------------------------------------------------------------------
# A reference is a dict with keys
#   ("fwd", name, t, j)   forward value (name in STEP_VALUES + h_prev, c_prev, x)
#   ("grad", name, ix)    dL/dparam element
#   ("dx", t, k)          dL/dx_t[k]
#   ("dstate0", s, j)     dL/ds_0[j], s in "h", "c"
#   ("adj", name, t, j)   dL/d(eps on name at step t, element j) at eps = 0

@lru_cache(maxsize=None)
def _nested_model(T):
    """Symbols, keys and the lambdified list of all brute-force expressions, for length T."""
    P = _param_symbols()
    X = [[_sym("x", t, k) for k in range(D)] for t in range(T)]
    h0 = [_sym("h0", j) for j in range(H)]
    c0 = [_sym("c0", j) for j in range(H)]
    R = [[_sym("R", t, j) for j in range(H)] for t in range(T)]
    S = {s: [_sym("S", s, j) for j in range(H)] for s in ("h", "c")}
    E = [{v: [_sym("eps", v, t, j) for j in range(H)] for v in EPS_VALUES} for t in range(T)]

    steps = []
    h_prev, c_prev = h0, c0
    for t in range(T):
        s = lstm_step(P, X[t], h_prev, c_prev, E[t])
        s["x"] = X[t]
        steps.append(s)
        h_prev, c_prev = s["h"], s["c"]
    L = (sum(R[t][j] * steps[t]["h"][j] for t in range(T) for j in range(H))
         + sum(S["h"][j] * h_prev[j] + S["c"][j] * c_prev[j] for j in range(H)))

    keys, exprs = [], []
    for t in range(T):
        for name in STEP_VALUES + ("h_prev", "c_prev", "x"):
            for j, e in enumerate(steps[t][name]):
                keys.append(("fwd", name, t, j))
                exprs.append(e)
    wrt = ([(("grad", name, ix), P[name][ix]) for name, ix in PARAM_ELEMS]
           + [(("dx", t, k), X[t][k]) for t in range(T) for k in range(D)]
           + [(("dstate0", "h", j), h0[j]) for j in range(H)]
           + [(("dstate0", "c", j), c0[j]) for j in range(H)]
           + [(("adj", v, t, j), E[t][v][j]) for t in range(T) for v in EPS_VALUES
              for j in range(H)])
    for key, symbol in wrt:
        keys.append(key)
        exprs.append(sp.diff(L, symbol))          # the brute force

    eps = [e for Et in E for v in EPS_VALUES for e in Et[v]]
    args = ([P[name][ix] for name, ix in PARAM_ELEMS] + [v for row in X for v in row]
            + h0 + c0 + [v for row in R for v in row] + S["h"] + S["c"] + eps)
    fn = sp.lambdify(args, exprs, modules="mpmath", cse=True)
    return keys, fn, len(eps)


@lru_cache(maxsize=None)
def nested_reference(seed, T):
    pt = point(seed, T)
    keys, fn, n_eps = _nested_model(T)
    with mpmath.workdps(DPS):
        argv = ([pt.params[name][ix] for name, ix in PARAM_ELEMS]
                + [pt.xs[t, 0, k] for t in range(T) for k in range(D)]
                + [pt.state0[s][0, j] for s in ("h", "c") for j in range(H)]
                + [pt.dhs[t, 0, j] for t in range(T) for j in range(H)]
                + [pt.dstateT[s][0, j] for s in ("h", "c") for j in range(H)]
                + [mpmath.mpf(0)] * n_eps)
        return dict(zip(keys, fn(*argv)))


# ---------------------------------------------------------------------------------------
# Reference 2: sympy.diff of one written-out step, chained forwards through the state
# ---------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _step_model():
    """Lambdified forward values and Jacobian of one step.

    Columns of the Jacobian: h_prev (H), c_prev (H), x (D), parameters, eps (15 H);
    rows: h (H) then c (H).
    """
    P = _param_symbols()
    x = [_sym("x", k) for k in range(D)]
    hp = [_sym("hp", j) for j in range(H)]
    cp = [_sym("cp", j) for j in range(H)]
    E = {v: [_sym("eps", v, j) for j in range(H)] for v in EPS_VALUES}
    s = lstm_step(P, x, hp, cp, E)
    inputs = (hp + cp + x + [P[name][ix] for name, ix in PARAM_ELEMS]
              + [E[v][j] for v in EPS_VALUES for j in range(H)])
    outputs = s["h"] + s["c"]
    values = [s[v][j] for v in STEP_VALUES for j in range(H)]
    jac = [sp.diff(o, z) for o in outputs for z in inputs]      # the brute force, per step
    fwd = sp.lambdify(inputs, values, modules="mpmath", cse=True)
    jacobian = sp.lambdify(inputs, jac, modules="mpmath", cse=True)
    return fwd, jacobian, len(inputs)


def _columns():
    """Column index in the step Jacobian of each kind of input (order of `_step_model`)."""
    keys = ([("h_prev", j) for j in range(H)] + [("c_prev", j) for j in range(H)]
            + [("x", k) for k in range(D)] + [("param", name, ix) for name, ix in PARAM_ELEMS]
            + [("eps", v, j) for v in EPS_VALUES for j in range(H)])
    return {key: n for n, key in enumerate(keys)}


@lru_cache(maxsize=None)
def chained_reference(seed, T=T_MAIN):
    pt = point(seed, T)
    fwd, jacobian, n_in = _step_model()
    col = _columns()
    ref = {}
    with mpmath.workdps(DPS):
        zero = mpmath.mpf(0)
        theta = [pt.params[name][ix] for name, ix in PARAM_ELEMS]
        h = [pt.state0["h"][0, j] for j in range(H)]
        c = [pt.state0["c"][0, j] for j in range(H)]
        J = []   # J[t]: 2H x n_in matrix (list of rows) at step t's point, eps = 0
        for t in range(T):
            x = [pt.xs[t, 0, k] for k in range(D)]
            argv = h + c + x + theta + [zero] * (len(EPS_VALUES) * H)
            vals = dict(zip([(v, j) for v in STEP_VALUES for j in range(H)], fwd(*argv)))
            for (v, j), value in vals.items():
                ref["fwd", v, t, j] = value
            for j in range(H):
                ref["fwd", "h_prev", t, j], ref["fwd", "c_prev", t, j] = h[j], c[j]
            for k in range(D):
                ref["fwd", "x", t, k] = x[k]
            flat = jacobian(*argv)
            J.append([flat[r * n_in:(r + 1) * n_in] for r in range(2 * H)])
            h = [vals["h", j] for j in range(H)]
            c = [vals["c", j] for j in range(H)]

        R = [[pt.dhs[t, 0, j] for j in range(H)] for t in range(T)]
        S = [pt.dstateT["h"][0, j] for j in range(H)] + [pt.dstateT["c"][0, j]
                                                          for j in range(H)]
        state_cols = [col["h_prev", j] for j in range(H)] + [col["c_prev", j] for j in range(H)]

        def dL(sens0, direct):
            """dL/dz: sens0 = d(h_0, c_0 initial)/dz, direct(t) = column of step t that z
            enters directly (or None).  Forward-mode: s_t = J_state s_{t-1} + J[:, col]."""
            s, total = list(sens0), zero
            for t in range(T):
                cz = direct(t)
                s = [sum(J[t][r][cs] * s[q] for q, cs in enumerate(state_cols))
                     + (J[t][r][cz] if cz is not None else zero) for r in range(2 * H)]
                total += sum(R[t][j] * s[j] for j in range(H))
            return total + sum(S[r] * s[r] for r in range(2 * H))

        none = [zero] * (2 * H)
        for name, ix in PARAM_ELEMS:
            ref["grad", name, ix] = dL(none, lambda t, c=col["param", name, ix]: c)
        for t0 in range(T):
            for k in range(D):
                ref["dx", t0, k] = dL(none, lambda t, t0=t0, c=col["x", k]: c if t == t0 else None)
            for v in EPS_VALUES:
                for j in range(H):
                    ref["adj", v, t0, j] = dL(
                        none, lambda t, t0=t0, c=col["eps", v, j]: c if t == t0 else None)
        for r, (s_name, j) in enumerate([("h", j) for j in range(H)] + [("c", j)
                                                                        for j in range(H)]):
            unit = [mpmath.mpf(int(q == r)) for q in range(2 * H)]
            ref["dstate0", s_name, j] = dL(unit, lambda t: None)
    return ref


# ---------------------------------------------------------------------------------------
# The package
# ---------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def package_derivation():
    return derive(LSTM.cell)


def run_package(pt: Point, derivation=None):
    """The package's results at `pt` (fresh copies of the inputs, 50 digits)."""
    d = derivation if derivation is not None else package_derivation()
    copy = lambda a: np.array(a, dtype=object)  # noqa: E731
    with mpmath.workdps(DPS):
        return run(d, {n: copy(v) for n, v in pt.params.items()}, copy(pt.xs),
                   {s: copy(v) for s, v in pt.state0.items()}, copy(pt.dhs),
                   {s: copy(v) for s, v in pt.dstateT.items()}, module="mpmath")


@lru_cache(maxsize=None)
def package_result(seed, T=T_MAIN):
    return run_package(point(seed, T))


# ---------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------

def _as_mpf(value):
    """The package value as an mpf; a plain float would have lost the 50 digits."""
    if isinstance(value, mpmath.mpf):
        return value
    if hasattr(value, "_mpf_"):  # e.g. a SymPy Float
        return mpmath.mpf(value)
    raise TypeError(f"{type(value).__name__} {value!r} is not a 50-digit mpmath number")


def mismatch(label, got, want):
    """None if `got` agrees with `want` to RTOL (relative), else a description."""
    with mpmath.workdps(DPS):
        try:
            g = _as_mpf(got)
        except TypeError as exc:
            return f"{label}: {exc}"
        w = mpmath.mpf(want)
        err = abs(g - w)
        if err <= max(RTOL * max(abs(g), abs(w)), ATOL):
            return None
        rel = err / abs(w) if w != 0 else mpmath.inf
        return (f"{label}: package {mpmath.nstr(g, 25)} != brute force {mpmath.nstr(w, 25)} "
                f"(relative error {mpmath.nstr(rel, 3)})")


def forward_problems(result, ref, T):
    hs, stateT, _, _, _, trace = result
    out = []
    for t in range(T):
        for name in STEP_VALUES + ("h_prev", "c_prev", "x"):
            for j in range(D if name == "x" else H):
                out.append(mismatch(f"forward value {name} at step {t}, element {j}",
                                    trace[t][name][0, j], ref["fwd", name, t, j]))
        for j in range(H):
            out.append(mismatch(f"hs[{t}][0][{j}]", hs[t, 0, j], ref["fwd", "h", t, j]))
    for s in ("h", "c"):
        for j in range(H):
            out.append(mismatch(f"stateT[{s!r}][0][{j}]", stateT[s][0, j],
                                ref["fwd", s, T - 1, j]))
    return [p for p in out if p]


def param_problems(result, ref, T):
    grads = result[2]
    out = [mismatch(f"grads[{name!r}]{list(ix)}", grads[name][ix], ref["grad", name, ix])
           for name, ix in PARAM_ELEMS]
    return [p for p in out if p]


def input_state_problems(result, ref, T):
    _, _, _, dxs, dstate0, _ = result
    out = [mismatch(f"dxs[{t}][0][{k}]", dxs[t, 0, k], ref["dx", t, k])
           for t in range(T) for k in range(D)]
    out += [mismatch(f"dstate0[{s!r}][0][{j}]", dstate0[s][0, j], ref["dstate0", s, j])
            for s in ("h", "c") for j in range(H)]
    return [p for p in out if p]


def _adjoint_ref(ref, name, t, j):
    """Brute-force dL/d(name at step t), element j."""
    if name == "x":
        return ref["dx", t, j]
    return ref["adj", name, t, j]


def adjoint_problems(result, ref, T):
    trace = result[5]
    out = []
    for t in range(T):
        for name in ADJOINTS:
            key = f"d_{name}"
            if key not in trace[t]:
                out.append(f"adjoint {key} at step {t}: missing from the trace")
                continue
            for j in range(D if name == "x" else H):
                out.append(mismatch(f"trace adjoint {key} at step {t}, element {j}",
                                    trace[t][key][0, j], _adjoint_ref(ref, name, t, j)))
    return [p for p in out if p]


def all_problems(result, ref, T):
    return (forward_problems(result, ref, T) + param_problems(result, ref, T)
            + input_state_problems(result, ref, T) + adjoint_problems(result, ref, T))


def _assert_none(problems, what, where):
    assert not problems, (f"{len(problems)} {what} disagree with brute force ({where}):\n  "
                          + "\n  ".join(problems))


# ---------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def fifty_digits():
    """Every test runs at 50 significant digits; the old precision comes back afterwards."""
    old = mpmath.mp.dps
    with mpmath.workdps(DPS):
        yield
    assert mpmath.mp.dps == old


CHECKS = {"forward values": forward_problems, "parameter gradients": param_problems,
          "dxs / dstate0 elements": input_state_problems, "trace adjoints": adjoint_problems}


@pytest.mark.parametrize("what", CHECKS)
@pytest.mark.parametrize("seed", SEEDS)
def test_package_matches_brute_force_T3(seed, what):
    """T=3, both points: every package number against sympy.diff (chained reference)."""
    problems = CHECKS[what](package_result(seed), chained_reference(seed), T_MAIN)
    _assert_none(problems, what, f"T={T_MAIN}, point seed={seed}, chained sympy.diff")


@pytest.mark.parametrize("what", CHECKS)
def test_package_matches_nested_sympy_diff_T2(what):
    """T=2: every package number against sympy.diff of the whole unrolled loss."""
    seed = SEEDS[0]
    problems = CHECKS[what](package_result(seed, 2), nested_reference(seed, 2), 2)
    _assert_none(problems, what, f"T=2, point seed={seed}, sympy.diff of the whole loss")


def test_the_two_brute_force_references_agree_T2():
    """The chained reference is the nested one: same keys, same numbers (T=2)."""
    seed = SEEDS[0]
    nested, chained = nested_reference(seed, 2), chained_reference(seed, 2)
    assert set(nested) == set(chained)
    problems = [mismatch(f"reference value {key}", chained[key], nested[key])
                for key in nested]
    _assert_none([p for p in problems if p], "chained reference values", "T=2")


@pytest.mark.skipif(os.environ.get("SELFCHECK_NESTED_T3") != "1",
                    reason="sympy.diff of the whole T=3 loss takes minutes; "
                           "set SELFCHECK_NESTED_T3=1")
@pytest.mark.parametrize("seed", SEEDS)
def test_package_matches_nested_sympy_diff_T3(seed):
    nested = nested_reference(seed, T_MAIN)
    problems = all_problems(package_result(seed), nested, T_MAIN)
    _assert_none(problems, "package values", f"T=3, point seed={seed}, sympy.diff of the "
                 "whole loss")
    chained = chained_reference(seed)
    _assert_none([p for p in (mismatch(f"reference value {k}", chained[k], nested[k])
                              for k in nested) if p], "chained reference values", "T=3")


def test_reference_sanity():
    """Facts of the brute force itself: nothing but the loss reads h at the last step, so
    its adjoint is R[T-1] + S_h; h_{t-1} is read by its loss term and by step t, so
    dL/dh_{t-1} = R[t-1] + (adjoint of step t's h_prev); at t=0 the h_prev / c_prev
    adjoints are dL/dh_0, dL/dc_0.  The points are not in saturation (gates strictly
    inside (0.02, 0.98))."""
    seed = SEEDS[0]
    pt, ref = point(seed), chained_reference(seed)
    for j in range(H):
        expected = pt.dhs[T_MAIN - 1, 0, j] + pt.dstateT["h"][0, j]
        assert mismatch(f"brute-force d_h at the last step, element {j}",
                        ref["adj", "h", T_MAIN - 1, j], expected) is None
        for t in range(1, T_MAIN):
            assert mismatch(f"brute-force d_h at step {t - 1}, element {j}",
                            ref["adj", "h", t - 1, j],
                            pt.dhs[t - 1, 0, j] + ref["adj", "h_prev", t, j]) is None
        for s in ("h", "c"):
            assert mismatch(f"brute-force d_{s}_prev at step 0, element {j}",
                            ref["adj", f"{s}_prev", 0, j], ref["dstate0", s, j]) is None
    for seed in SEEDS:
        ref = chained_reference(seed)
        for t in range(T_MAIN):
            for gate in ("f", "i", "o"):
                for j in range(H):
                    assert 0.02 < ref["fwd", gate, t, j] < 0.98, (seed, gate, t, j)


def test_checker_detects_a_tiny_error_in_one_adjoint():
    """Multiply one package number, d_c at step 1 element 1, by (1 + 1e-30): the comparison
    must flag exactly that number and nothing else."""
    seed = SEEDS[0]
    ref = chained_reference(seed)
    result = run_package(point(seed))
    assert all_problems(result, ref, T_MAIN) == [], "baseline must be clean for this test"
    trace = result[5]
    trace[1]["d_c"][0, 1] = trace[1]["d_c"][0, 1] * (1 + mpmath.mpf("1e-30"))
    problems = all_problems(result, ref, T_MAIN)
    assert len(problems) == 1, f"expected exactly one mismatch, got {problems}"
    assert problems[0].startswith("trace adjoint d_c at step 1, element 1:"), problems[0]


def test_checker_detects_a_wrong_derivation():
    """A derivation whose d_c forgets the gradient carried in from step t+1 (BPTT through
    the cell state; at the last step that is dstateT["c"]) must be caught at every step's
    d_c, and in the gradients, while the forward values and the last d_h still agree."""
    seed = SEEDS[0]
    d = package_derivation()
    broken = tuple(
        dataclasses.replace(a, terms=tuple(t for t in a.terms if t.branch != NEXT_STEP_BRANCH))
        if a.target == "c" else a
        for a in d.adjoints)
    assert broken != d.adjoints, "the derivation of d_c has no carry term to remove"
    result = run_package(point(seed), dataclasses.replace(d, adjoints=broken))
    problems = all_problems(result, chained_reference(seed), T_MAIN)
    for t in range(T_MAIN):
        assert any(p.startswith(f"trace adjoint d_c at step {t},") for p in problems), \
            (t, problems)
    assert any(p.startswith("grads[") for p in problems), problems
    assert any(p.startswith("dstate0[") for p in problems), problems
    assert not any(p.startswith("forward value") for p in problems), problems
    assert not any(p.startswith(f"trace adjoint d_h at step {T_MAIN - 1},")
                   for p in problems), problems
