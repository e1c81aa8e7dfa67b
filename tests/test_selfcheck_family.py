"""Symbolic self-check of every cell: brute-force SymPy differentiation of the unrolled cell.

For each cell the forward pass is written out element by element in SymPy scalars, here,
from the stage list (the scalar meaning of each stage kind is spelled out below, not taken
from the package: sigmoid is 1/(1+exp(-z)), softmax exp(a_k)/sum_j exp(a_j)), unrolled over
T=2 steps for one example.  A perturbation eps is added to every stage output at every
step and element, so dL/d(eps) at eps=0 is the true total gradient of that value.
`sympy.diff` of L = sum(R * outputs) + sum(S * final state) gives, brute force, the
parameter, input and initial-state gradients and every intermediate adjoint.  Each is
differentiated with only the one variable symbolic (every other leaf a 60-digit number,
from a random rational point), evaluated to 50 significant digits and compared with what
the derivation computes (`derive.interpret.run` at the same point, in mpmath); one random
entry of every gradient array and of every adjoint at every step is checked.
(tests/test_selfcheck.py does the same for the LSTM with the cell itself written by hand.)
"""
from __future__ import annotations

import random
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp

from derive import derive
from catalogue.cells import CELLS
from derive.interpret import run
from catalogue.spec import load_spec
from derive.stages import Kind

ROOT = Path(__file__).resolve().parent.parent
SPECS = {path.stem: path for path in [ROOT / "examples" / "mgu.toml",
                                      ROOT / "tests" / "specs" / "every_kind.toml"]}

SIZES = {"D": 2, "H": 2, "P": 3, "K": 3}
T_STEPS = 2
# The unrolled layer-normalised cells are too large to differentiate by brute force over two
# steps in a test's time (the LSTM did not finish in 25 minutes on a shared machine, the GRU
# took 18): one step, which still checks every formula, the carried gradients entering from
# dstateT included.
STEPS_OF = {"layernorm_lstm": 1, "layernorm_gru": 1}
DIGITS = 50


def _scalar_stage(kind, args, constant=None):
    """One stage's outputs from its inputs' scalar entries (lists), written out here."""
    # the constant as the decimal the stage states (a layer norm's 1e-05 is 1/100000)
    c = sp.Rational(repr(constant)) if constant is not None else None
    unary = {Kind.RELU: lambda a: sp.Max(a, 0), Kind.SOFTPLUS: lambda a: sp.log(1 + sp.exp(a)),
             Kind.SOFTSIGN: lambda a: a / (1 + sp.Abs(a)), Kind.EXP: sp.exp, Kind.LOG: sp.log,
             Kind.RECIPROCAL: lambda a: 1 / a, Kind.SCALE: lambda a: c * a,
             Kind.SHIFT: lambda a: a + c, Kind.RSQRT: lambda a: 1 / sp.sqrt(a + c)}
    if kind in unary:
        return [unary[kind](a) for a in args[0]]
    if kind is Kind.LOGSIGMOID:
        return [sp.log(1 / (1 + sp.exp(-a))) for a in args[0]]
    if kind is Kind.MAX:
        return [sp.Max(a, b) for a, b in zip(*args)]
    if kind is Kind.SUB:
        return [a - b for a, b in zip(*args)]
    if kind is Kind.DIV:
        return [a / b for a, b in zip(*args)]
    if kind is Kind.SIGMOID:
        return [1 / (1 + sp.exp(-a)) for a in args[0]]
    if kind is Kind.TANH:
        return [(sp.exp(a) - sp.exp(-a)) / (sp.exp(a) + sp.exp(-a)) for a in args[0]]
    if kind is Kind.MUL:
        return [a * b for a, b in zip(*args)]
    if kind is Kind.ADD:
        return [a + b for a, b in zip(*args)]
    if kind is Kind.ONE_MINUS:
        return [1 - a for a in args[0]]
    if kind is Kind.SQUARED_DEVIATION:
        return [(a - b) ** 2 for a, b in zip(*args)]
    if kind is Kind.NORMALISED:   # gamma (z - mu) r + beta
        return [g * (z - m) * r + b for z, m, r, g, b in zip(*args)]
    if kind is Kind.MEAN:   # the mean of all entries of the inputs, on every entry of one
        entries = [a for arg in args for a in arg]
        return [sum(entries) / len(entries)] * len(args[0])
    if kind is Kind.SOFTMAX:
        total = sum(sp.exp(a) for a in args[0])
        return [sp.exp(a) / total for a in args[0]]
    raise AssertionError(f"no scalar meaning written for {kind}")


def unroll(cell, steps, value):
    """L of the unrolled cell; `value(name, index)` gives each leaf and each eps."""
    size = SIZES
    sizes = cell.sizes()
    params = {}
    for name, shape in cell.params():
        dims = [size[s] for s in shape]
        params[name] = (sp.Matrix(*dims, lambda i, j: value(name, (i, j))) if len(dims) == 2
                        else [value(name, (i,)) for i in range(dims[0])])
    state = {s: [value(f"{s}0", (j,)) for j in range(size[n])] for s, n in cell.state}
    loss = 0
    for t in range(steps):
        values = {"x": [value("x", (t, j)) for j in range(size[sizes["x"]])],
                  **{f"{s}_prev": v for s, v in state.items()}}
        for st in cell.stages:
            if st.kind is Kind.AFFINE:
                out = [sum((params[w].row(k) * sp.Matrix(values[x]))[0]
                           for w, x in zip(st.weights, st.inputs))
                       + (params[st.bias][k] if st.bias else 0)
                       for k in range(size[st.size])]
            else:
                out = _scalar_stage(st.kind, [values.get(a, params.get(a)) for a in st.inputs],
                                    st.constant)
            values[st.name] = [v + value("eps", (t, st.name, j)) for j, v in enumerate(out)]
        state = {s: values[s] for s in cell.state_names}
        loss += sum(value("R", (t, j)) * y for j, y in enumerate(values[cell.output]))
    for s, v in state.items():
        loss += sum(value(f"S_{s}", (j,)) * e for j, e in enumerate(v))
    return loss


def leaves(cell, steps):
    """Every (name, index) the loss depends on: parameters, inputs, initial state, eps."""
    size, sizes = SIZES, cell.sizes()
    out = []
    for name, shape in cell.params():
        dims = [size[s] for s in shape]
        out += [(name, i) for i in np.ndindex(*dims)]
    out += [("x", (t, j)) for t in range(steps) for j in range(size[sizes["x"]])]
    out += [(f"{s}0", (j,)) for s, n in cell.state for j in range(size[n])]
    return out


def eps_leaves(cell, steps):
    sizes = cell.sizes()
    return [("eps", (t, st.name, j)) for t in range(steps) for st in cell.stages
            for j in range(SIZES[sizes[st.name]])]


def _rational(rng):
    return sp.Rational(rng.randint(-12, 12), rng.randint(6, 14))


def _to_mp(value):
    return mpmath.mpf(value.p) / value.q


def brute_force(cell, steps, point, wrt):
    """dL/d(wrt) by sympy.diff: every other leaf is a 60-digit number, wrt stays a symbol."""
    w = sp.Symbol("w", real=True)

    def value(name, index):
        if (name, index) == wrt:
            return w
        if name == "eps":
            return sp.Integer(0)
        return point[(name, index)]

    derivative = sp.diff(unroll(cell, steps, value), w)
    return mpmath.mpf(sp.N(derivative.subs(w, point.get(wrt, sp.Integer(0))), DIGITS + 10))


@pytest.mark.parametrize("name", list(CELLS) + list(SPECS))
def test_every_derived_formula_equals_brute_force(name):
    cell = (CELLS[name] if name in CELLS else load_spec(SPECS[name])[0]).cell
    steps = STEPS_OF.get(name, T_STEPS) if cell.recurrent else 1
    rng = random.Random(sum(map(ord, name)))
    point = {}
    out_size = SIZES[cell.sizes()[cell.output]]
    for key in leaves(cell, steps):
        point[key] = sp.Float(_rational(rng), DIGITS + 10)
    R = [[_rational(rng) for _ in range(out_size)] for _ in range(steps)]
    S = {s: [_rational(rng) for _ in range(SIZES[n])] for s, n in cell.state}
    point.update({("R", (t, j)): sp.Float(R[t][j], DIGITS + 10) for t in range(steps)
                  for j in range(out_size)})
    point.update({(f"S_{s}", (j,)): sp.Float(v, DIGITS + 10) for s in S for j, v in enumerate(S[s])})
    with mpmath.workdps(DIGITS):
        derived = _derived(cell, point, R, S, steps)
        assert len(derived) == len(leaves(cell, steps)) + len(eps_leaves(cell, steps))
        mismatches = []
        for key in _one_entry_per_formula(derived, rng):
            want = brute_force(cell, steps, point, key)
            if not abs(derived[key] - want) <= mpmath.mpf(10) ** -40 * max(1, abs(want)):  # NaN fails
                mismatches.append(f"{key}: derived {mpmath.nstr(derived[key], 12)} "
                                  f"brute force {mpmath.nstr(want, 12)}")
    assert not mismatches, f"{name}: " + "; ".join(mismatches[:5])


def _one_entry_per_formula(derived, rng):
    """One random entry of every gradient array and of every adjoint at every step.

    Each backward formula is a vector formula; checking a random entry of each, at every
    step, keeps the brute-force differentiation affordable for the larger cells.
    """
    groups = {}
    for key in derived:
        name, index = key
        group = (name, index[0], index[1]) if name == "eps" else (name, index[0]) if name == "x" else name
        groups.setdefault(group, []).append(key)
    return [rng.choice(keys) for keys in groups.values()]


def _derived(cell, point, R, S, steps):
    """What the derivation computes at the point, keyed like the leaves."""
    sizes = cell.sizes()

    def arr(name, shape):
        return np.array([mpmath.mpf(str(point[(name, i)])) for i in np.ndindex(*shape)],
                        dtype=object).reshape(shape)

    params = {n: arr(n, [SIZES[s] for s in shape]) for n, shape in cell.params()}
    xs = arr("x", (steps, SIZES[sizes["x"]]))[:, None, :]
    state0 = {s: arr(f"{s}0", (SIZES[n],))[None] for s, n in cell.state}
    dhs = np.array([[[_to_mp(r) for r in row]] for row in R], dtype=object)
    dstateT = {s: np.array([[_to_mp(v) for v in S[s]]], dtype=object) for s in S}
    _, _, grads, dxs, dstate0, trace = run(derive(cell), params, xs, state0, dhs, dstateT,
                                           module="mpmath")
    out = {}
    for name, shape in cell.params():
        out.update({(name, i): grads[name][i] for i in np.ndindex(*[SIZES[s] for s in shape])})
    out.update({("x", (t, j)): dxs[t, 0, j] for t in range(steps) for j in range(xs.shape[2])})
    out.update({(f"{s}0", (j,)): dstate0[s][0, j] for s in dstate0 for j in range(dstate0[s].shape[1])})
    for t, st, j in (key for _, key in eps_leaves(cell, steps)):
        out[("eps", (t, st, j))] = trace[t][f"d_{st}"][0, j]   # a total derivative
    return out


def test_the_self_check_can_fail(monkeypatch):
    """A derivation with one wrong local partial (sigmoid' = s instead of s(1-s)) is caught."""
    from derive import rules
    wrong = rules.Partial(Kind.SIGMOID, 0, rules.OUT, ())
    monkeypatch.setattr(rules, "derivative", lambda kind, arg: wrong if kind is Kind.SIGMOID
                        else rules.derivative.__wrapped__(kind, arg))
    import derive.derivation as derivation_module
    monkeypatch.setattr(derivation_module, "derivative", rules.derivative)
    derivation_module.derive.cache_clear()   # derivations are cached per cell: derive afresh
    try:
        with pytest.raises(AssertionError, match="mlp: .*derived .* brute force"):
            test_every_derived_formula_equals_brute_force("mlp")
    finally:
        derivation_module.derive.cache_clear()   # and keep the wrong one from other tests
