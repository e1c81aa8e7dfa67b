"""Symbolic self-check of the LSTM derivation, by brute force.

The unrolled LSTM is written out here element by element in SymPy scalars, with no help
from the package (sigmoid(z) is spelled 1/(1+exp(-z)), tanh is sympy.tanh), for small
sizes: H=2 hidden units, D=3 inputs, T=3 steps, batch B=1.  The scalar loss

    L = sum_t sum_j R[t][j] h_t[j] + sum_j S_h[j] h_T[j] + sum_j S_c[j] c_T[j]

is differentiated with `sympy.diff`, one scalar at a time:

* with respect to every parameter, input and initial-state element (gradients, dxs,
  dstate0);
* with respect to a perturbation symbol `eps` added to the definition of every
  intermediate value at every step and element (e.g. f_t[j] = sigmoid(a_f[j]) + eps),
  evaluated at eps = 0: this is dL/d(value at step t), the adjoint the derivation calls
  `d_<value>`.  The adjoint of h_prev / c_prev at step t is the perturbation of h / c at
  step t-1 (or the initial state at t=0), and d_x at step t is dL/dx_t.

The resulting expressions are compiled once with `lambdify(..., modules="mpmath")` and
evaluated at two random rational points with 50 significant digits; every number the
package produces through `derive.interpret.run(..., module="mpmath")` - outputs, final
state, parameter gradients, dxs, dstate0, and every forward value and adjoint in the
trace - must agree to 1e-40 relative.  The last tests show the comparison does fail when
one package number is off by one part in 1e30, or when the derivation is wrong.
"""
from __future__ import annotations

import dataclasses
import random
from functools import lru_cache

import mpmath
import numpy as np
import pytest
import sympy as sp

from derive.cells import LSTM
from derive.derivation import TermKind, derive
from derive.interpret import run

H, D, T, B = 2, 3, 3, 1
DPS = 50
RTOL = mpmath.mpf("1e-40")
ATOL = mpmath.mpf("1e-45")  # floor for values that are zero up to rounding
SEEDS = (20240601, 7)

GATES = ("f", "i", "g", "o")
PARAM_SHAPES = {**{f"W_{g}": (H, D) for g in GATES}, **{f"U_{g}": (H, H) for g in GATES},
                **{f"b_{g}": (H,) for g in GATES}}
# per-step values that get a perturbation symbol, in forward order
STEP_VALUES = ("a_f", "a_i", "a_g", "a_o", "f", "i", "g", "o", "m", "n", "c", "k", "h")
ADJOINTS = STEP_VALUES + ("c_prev", "h_prev", "x")


# ---------------------------------------------------------------------------------------
# The brute-force model, written independently of the package
# ---------------------------------------------------------------------------------------

def _sigmoid(z):
    return 1 / (1 + sp.exp(-z))


def _sym(*parts):
    return sp.Symbol("_".join(str(p) for p in parts))


def _elements(shape):
    return list(np.ndindex(*shape))


@dataclasses.dataclass
class BruteForce:
    args: list          # every input symbol, in the order `fn` takes them
    keys: list          # what each output of `fn` is, e.g. ("adj", "d_c", t, j)
    fn: object          # lambdified: values of args -> list of mpf, one per key
    eps: list           # the perturbation symbols (set to 0 when evaluating)


@lru_cache(maxsize=None)
def brute_force() -> BruteForce:
    """The unrolled LSTM, its loss, and sympy.diff of the loss w.r.t. every scalar."""
    P = {name: {ix: _sym(name, *ix) for ix in _elements(shape)}
         for name, shape in PARAM_SHAPES.items()}
    X = [[_sym("x", t, k) for k in range(D)] for t in range(T)]
    h0 = [_sym("h0", j) for j in range(H)]
    c0 = [_sym("c0", j) for j in range(H)]
    R = [[_sym("R", t, j) for j in range(H)] for t in range(T)]
    S_h = [_sym("S_h", j) for j in range(H)]
    S_c = [_sym("S_c", j) for j in range(H)]
    E = {(v, t, j): _sym("eps", v, t, j) for v in STEP_VALUES for t in range(T)
         for j in range(H)}

    values = []   # values[t][name][j]: expression of that element at step t
    h_prev, c_prev = h0, c0
    for t in range(T):
        x = X[t]
        s = {}

        def put(name, exprs):
            s[name] = [e + E[name, t, j] for j, e in enumerate(exprs)]

        for g in GATES:
            put(f"a_{g}", [sum(P[f"W_{g}"][j, k] * x[k] for k in range(D))
                           + sum(P[f"U_{g}"][j, k] * h_prev[k] for k in range(H))
                           + P[f"b_{g}"][(j,)] for j in range(H)])
        put("f", [_sigmoid(a) for a in s["a_f"]])
        put("i", [_sigmoid(a) for a in s["a_i"]])
        put("g", [sp.tanh(a) for a in s["a_g"]])
        put("o", [_sigmoid(a) for a in s["a_o"]])
        put("m", [s["f"][j] * c_prev[j] for j in range(H)])
        put("n", [s["i"][j] * s["g"][j] for j in range(H)])
        put("c", [s["m"][j] + s["n"][j] for j in range(H)])
        put("k", [sp.tanh(s["c"][j]) for j in range(H)])
        put("h", [s["o"][j] * s["k"][j] for j in range(H)])
        s["h_prev"], s["c_prev"], s["x"] = h_prev, c_prev, x
        values.append(s)
        h_prev, c_prev = s["h"], s["c"]

    L = (sum(R[t][j] * values[t]["h"][j] for t in range(T) for j in range(H))
         + sum(S_h[j] * values[-1]["h"][j] + S_c[j] * values[-1]["c"][j] for j in range(H)))

    keys, exprs = [], []

    def want(key, expr):
        keys.append(key)
        exprs.append(expr)

    # forward values, per step
    for t in range(T):
        for name in STEP_VALUES + ("h_prev", "c_prev", "x"):
            for j, e in enumerate(values[t][name]):
                want(("fwd", name, t, j), e)
    # gradients of parameters, inputs and the initial state
    for name, elems in P.items():
        for ix, p in elems.items():
            want(("grad", name, ix), sp.diff(L, p))
    for t in range(T):
        for k in range(D):
            want(("dx", t, k), sp.diff(L, X[t][k]))
    for j in range(H):
        want(("dstate0", "h", j), sp.diff(L, h0[j]))
        want(("dstate0", "c", j), sp.diff(L, c0[j]))
    # every intermediate adjoint: dL/d(eps on that value), at eps = 0
    for (v, t, j), e in E.items():
        want(("adj", v, t, j), sp.diff(L, e))

    args = ([p for elems in P.values() for p in elems.values()]
            + [v for row in X for v in row] + h0 + c0
            + [v for row in R for v in row] + S_h + S_c + list(E.values()))
    fn = sp.lambdify(args, exprs, modules="mpmath", cse=True)
    return BruteForce(args, keys, fn, list(E.values()))


# ---------------------------------------------------------------------------------------
# Random rational points, the package run and the brute-force numbers there
# ---------------------------------------------------------------------------------------

def _rational(rng, scale):
    return sp.Rational(rng.randint(-9, 9), rng.randint(1, 9)) * scale


def _mpf(q):
    q = sp.Rational(q)
    return mpmath.mpf(int(q.p)) / int(q.q)


@dataclasses.dataclass
class Point:
    params: dict        # name -> object array of mpf
    xs: np.ndarray      # (T, B, D)
    state0: dict        # "h"/"c" -> (B, H)
    dhs: np.ndarray     # (T, B, H)
    dstateT: dict       # "h"/"c" -> (B, H)
    ref: dict           # brute-force key -> mpf


def _array(rng, shape, scale):
    out = np.empty(shape, dtype=object)
    for ix in np.ndindex(*shape):
        out[ix] = _mpf(_rational(rng, scale))
    return out


@lru_cache(maxsize=None)
def point(seed) -> Point:
    """A random rational point (fixed seed) and the brute-force values there."""
    rng = random.Random(seed)
    bf = brute_force()
    with mpmath.workdps(DPS):
        # small weights and inputs keep the gates away from saturation
        params = {name: _array(rng, shape, sp.Rational(1, 4))
                  for name, shape in PARAM_SHAPES.items()}
        xs = _array(rng, (T, B, D), sp.Rational(1, 3))
        state0 = {"h": _array(rng, (B, H), sp.Rational(1, 5)),
                  "c": _array(rng, (B, H), sp.Rational(1, 2))}
        dhs = _array(rng, (T, B, H), 1)
        dstateT = {"h": _array(rng, (B, H), 1), "c": _array(rng, (B, H), 1)}
        argv = ([params[n][ix] for n, shape in PARAM_SHAPES.items() for ix in _elements(shape)]
                + [xs[t, 0, k] for t in range(T) for k in range(D)]
                + [state0["h"][0, j] for j in range(H)] + [state0["c"][0, j] for j in range(H)]
                + [dhs[t, 0, j] for t in range(T) for j in range(H)]
                + [dstateT["h"][0, j] for j in range(H)] + [dstateT["c"][0, j] for j in range(H)]
                + [mpmath.mpf(0)] * len(bf.eps))
        assert len(argv) == len(bf.args)
        ref = dict(zip(bf.keys, bf.fn(*argv)))
    return Point(params, xs, state0, dhs, dstateT, ref)


def run_package(pt: Point, derivation=None):
    """The package's results at `pt` (fresh copies of the inputs, 50 digits)."""
    d = derivation if derivation is not None else package_derivation()
    copy = lambda a: np.array(a, dtype=object)  # noqa: E731
    with mpmath.workdps(DPS):
        return run(d, {n: copy(v) for n, v in pt.params.items()}, copy(pt.xs),
                   {s: copy(v) for s, v in pt.state0.items()}, copy(pt.dhs),
                   {s: copy(v) for s, v in pt.dstateT.items()}, module="mpmath")


@lru_cache(maxsize=None)
def package_derivation():
    return derive(LSTM)


@lru_cache(maxsize=None)
def package_result(seed):
    return run_package(point(seed))


# ---------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------

def _as_mpf(value):
    """The package value as an mpf; a plain float would lose the 50 digits, so refuse it."""
    if isinstance(value, mpmath.mpf):
        return value
    if hasattr(value, "_mpf_"):  # e.g. a SymPy Float
        return mpmath.mpf(value)
    raise TypeError(f"{type(value).__name__} {value!r} is not a 50-digit mpmath number")


def mismatch(label, got, want):
    """None if `got` agrees with the brute-force `want` to RTOL, else a description."""
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


def _report(problems, what, seed):
    problems = [p for p in problems if p]
    assert not problems, (f"{len(problems)} {what} disagree with brute force at point "
                          f"seed={seed}:\n  " + "\n  ".join(problems))


def forward_problems(result, ref):
    hs, stateT, _, _, _, trace = result
    out = []
    for t in range(T):
        for name in STEP_VALUES + ("h_prev", "c_prev", "x"):
            for j in range(D if name == "x" else H):
                out.append(mismatch(f"forward {name} at step {t}, element {j}",
                                    trace[t][name][0, j], ref["fwd", name, t, j]))
        for j in range(H):
            out.append(mismatch(f"hs[{t}][0][{j}]", hs[t, 0, j], ref["fwd", "h", t, j]))
    for s in ("h", "c"):
        for j in range(H):
            out.append(mismatch(f"stateT[{s!r}][0][{j}]", stateT[s][0, j],
                                ref["fwd", s, T - 1, j]))
    return out


def param_problems(result, ref):
    grads = result[2]
    return [mismatch(f"grads[{name!r}]{list(ix)}", grads[name][ix], ref["grad", name, ix])
            for name, shape in PARAM_SHAPES.items() for ix in _elements(shape)]


def input_state_problems(result, ref):
    _, _, _, dxs, dstate0, trace = result
    out = [mismatch(f"dxs[{t}][0][{k}]", dxs[t, 0, k], ref["dx", t, k])
           for t in range(T) for k in range(D)]
    out += [mismatch(f"dstate0[{s!r}][0][{j}]", dstate0[s][0, j], ref["dstate0", s, j])
            for s in ("h", "c") for j in range(H)]
    return out


def _adjoint_ref(ref, name, t, j):
    """Brute-force dL/d(name at step t), element j."""
    if name == "x":
        return ref["dx", t, j]
    if name in ("h_prev", "c_prev"):
        s = name[0]
        return ref["adj", s, t - 1, j] if t > 0 else ref["dstate0", s, j]
    return ref["adj", name, t, j]


def adjoint_problems(result, ref):
    trace = result[5]
    out = []
    for t in range(T):
        for name in ADJOINTS:
            for j in range(D if name == "x" else H):
                key = f"d_{name}"
                if key not in trace[t]:
                    out.append(f"{key} at step {t}: missing from the trace")
                    continue
                out.append(mismatch(f"trace adjoint {key} at step {t}, element {j}",
                                    trace[t][key][0, j], _adjoint_ref(ref, name, t, j)))
    return out


def all_problems(result, ref):
    return [p for p in (forward_problems(result, ref) + param_problems(result, ref)
                        + input_state_problems(result, ref) + adjoint_problems(result, ref))
            if p]


# ---------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def fifty_digits():
    """Every test runs at 50 significant digits; the old precision comes back afterwards."""
    with mpmath.workdps(DPS):
        yield


def test_brute_force_model_is_self_consistent():
    """Sanity of the brute force itself: the eps on h at the last step must give the same
    adjoint as the sum of its loss weights (R[T-1] + S_h), since nothing else reads h_T."""
    pt = point(SEEDS[0])
    for j in range(H):
        expected = pt.dhs[T - 1, 0, j] + pt.dstateT["h"][0, j]
        assert mismatch(f"brute d_h at last step, element {j}",
                        pt.ref["adj", "h", T - 1, j], expected) is None


@pytest.mark.parametrize("seed", SEEDS)
def test_forward_values_match_unrolled_lstm(seed):
    _report(forward_problems(package_result(seed), point(seed).ref), "forward values", seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_parameter_gradients_match_sympy_diff(seed):
    _report(param_problems(package_result(seed), point(seed).ref), "parameter gradients",
            seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_input_and_initial_state_gradients_match_sympy_diff(seed):
    _report(input_state_problems(package_result(seed), point(seed).ref),
            "dxs / dstate0 elements", seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_every_intermediate_adjoint_matches_perturbation(seed):
    _report(adjoint_problems(package_result(seed), point(seed).ref), "trace adjoints", seed)


def test_checker_detects_a_tiny_error_in_one_adjoint():
    """Multiply one package number, d_c at step 1 element 1, by (1 + 1e-30): the comparison
    must flag exactly that number and nothing else."""
    seed = SEEDS[0]
    result = run_package(point(seed))
    assert all_problems(result, point(seed).ref) == [] or True  # baseline checked elsewhere
    before = set(all_problems(result, point(seed).ref))
    trace = result[5]
    trace[1]["d_c"][0, 1] = trace[1]["d_c"][0, 1] * (1 + mpmath.mpf("1e-30"))
    new = [p for p in all_problems(result, point(seed).ref) if p not in before]
    assert len(new) == 1, f"expected exactly one new mismatch, got {new}"
    assert new[0].startswith("trace adjoint d_c at step 1, element 1:"), new[0]


def test_checker_detects_a_wrong_derivation():
    """A derivation that forgets the cell state's carry from step t+1 (BPTT through c) must
    be caught: the final-step numbers still agree, the earlier ones do not."""
    seed = SEEDS[0]
    d = package_derivation()
    broken = tuple(
        dataclasses.replace(a, terms=tuple(t for t in a.terms if t.kind is not TermKind.CARRY))
        if a.target == "c" else a
        for a in d.adjoints)
    assert broken != d.adjoints, "the derivation of d_c has no carry term to remove"
    result = run_package(point(seed), dataclasses.replace(d, adjoints=broken))
    problems = all_problems(result, point(seed).ref)
    assert any(p.startswith("trace adjoint d_c at step 0,") for p in problems), problems
    assert any(p.startswith("grads[") for p in problems), problems
    assert any(p.startswith("dstate0[") for p in problems), problems
    assert not any(p.startswith(f"trace adjoint d_c at step {T - 1},") for p in problems), \
        problems
    assert not any(p.startswith("forward ") for p in problems), problems


def test_precision_is_restored():
    """The fixture restores mpmath's working precision."""
    assert mpmath.mp.dps == DPS
