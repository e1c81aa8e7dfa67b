"""What the document teaches must be true: every displayed step, every quoted number, every name.

- each displayed line of an activation's derivation equals the line before it at random real
  points, and no subexpression of any line is complex there (no log of a negative number);
- the direct per-step loss gradient and the final-state gradient have names of their own,
  never the total gradient's;
- every number the gradient-flow text quotes is read off the measured curves.
"""
import random
import re

import mpmath
import pytest
import sympy as sp

from codegen.emit_latex import emit_latex
from derive.ops import OPS, X
from derive.rules import OUT, derivative

ACTIVATIONS = [op for op in OPS if op.activation]


def _real_everywhere(expr, x):
    """Every subexpression of `expr` evaluated at x (50 digits) is real."""
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Basic) and node.free_symbols <= {X}:
            value = sp.N(node.subs(X, x), 50)
            if value.has(sp.zoo, sp.nan):
                continue
            assert abs(sp.im(value)) < sp.Float("1e-40"), (node, x, value)


def _points(op, n=12, seed=0):
    rng = random.Random(seed)
    lo = 0.05 if op.name == "log" else -4.0   # the domain of the definition
    return [sp.Rational(round(rng.uniform(lo, 4.0), 6)).limit_denominator(10**6) for _ in range(n)]


@pytest.mark.parametrize("op", ACTIVATIONS, ids=[op.name for op in ACTIVATIONS])
def test_every_displayed_step_of_an_activation_is_true_on_the_reals(op):
    steps = derivative(op, 0).steps
    names = [name for name, _ in steps]
    assert names[:2] == ["definition", "derivative"]
    assert "inverse" not in names   # solving s = def(x) for x picks complex branches
    lines = [expr.doit().subs(OUT, op.expr) for _, expr in steps[1:]]   # the ds/dx lines
    for x in _points(op):
        for (_, expr) in steps:
            _real_everywhere(sp.sympify(expr).subs(OUT, sp.UnevaluatedExpr(op.expr)).doit(), x)
        first = sp.N(lines[0].subs(X, x), 50)
        for line in lines[1:]:
            assert abs(sp.N(line.subs(X, x), 50) - first) < sp.Float("1e-40"), (op.name, line, x)
    # the derivative line really is the derivative of the definition
    x = _points(op)[0]
    with mpmath.workdps(40):
        numeric = mpmath.diff(sp.lambdify(X, op.expr, "mpmath"), mpmath.mpf(sp.N(x, 40)))
    assert abs(sp.N(lines[0].subs(X, x), 30) - numeric) < 1e-12


def test_the_step_check_can_fail():
    """The old display (solve for x: a complex branch for tanh) is rejected."""
    from derive.ops import Kind
    s = OUT
    inverse = sp.log(-sp.sqrt(-(s + 1) / (s - 1)))
    with pytest.raises(AssertionError):
        _real_everywhere(inverse.subs(s, sp.UnevaluatedExpr(Kind.TANH.expr)).doit(), sp.Rational(1, 3))


# ----- names: the direct per-step loss gradient and the final-state gradient -------------

from catalogue import get_cell   # noqa: E402
from catalogue.cells import CELLS   # noqa: E402
from conftest import GENERATED   # noqa: E402
from derive import derive   # noqa: E402

RECURRENT = sorted(name for name in CELLS if get_cell(name).recurrent)


@pytest.mark.parametrize("name", RECURRENT)
def test_the_direct_loss_gradient_is_never_written_as_the_total_one(name):
    tex = (GENERATED / f"{name}.tex").read_text(encoding="utf-8")
    output = get_cell(name).output
    # dL/dv is the total gradient delta v: no backward term, figure or sentence may use
    # it for the direct term of a step's loss or for the final-state term
    assert not re.search(r"\\partial L\}?\s*/?\s*\{?\\partial " + output + r"_\{[tT]\}", tex), name
    assert r"\frac{\partial \ell_{t}}{\partial " in tex
    assert r"\partial \ell_{\mathrm{fin}}" in tex
    assert r"L = \sum_{t=1}^{T} \ell_t + \ell_{\mathrm{fin}}" in tex
    code = (GENERATED / f"{name}.py").read_text(encoding="utf-8")
    assert f"dl_t/d{output}_t" in code and "dl_fin/dstate_T" in code
    shown = str(derive(get_cell(name)))
    assert f"dl_t/d{output}" in shown and "dL/d" not in shown.split("names for")[0].replace("dL/dv", "")
