"""Adding an activation is one row of the operations table (plus a spelling per backend).

Two rows made here, outside the package's table — a hard sigmoid (piecewise linear, from
absolute values) and GELU (with the error function erf) — go through the whole pipeline:
SymPy differentiates their definitions, the derivation's gradients agree with central
differences of its own forward pass, and the document shows them.  The module emitters
are checked in test_backends.py: NumPy spells the hard sigmoid and refuses erf with one
line naming it, at generation time.
"""
import numpy as np
import pytest
import sympy as sp

from derive import derive
from derive.interpret import run
from derive.ops import OPS, X, Op, activation
from derive.rules import derivative
from derive.stages import Cell, affine, elementwise

HARD_SIGMOID = activation("hard_sigmoid", (sp.Abs(X + 1) - sp.Abs(X - 1)) / 4 + sp.Rational(1, 2),
                          (sp.Abs(X + 1) - sp.Abs(X - 1)) / 4 + sp.Rational(1, 2), False,
                          r"\operatorname{hardsigmoid}", "the hard sigmoid")
GELU = activation("gelu", X / 2 * (1 + sp.erf(X / sp.sqrt(2))), X / 2 * (1 + sp.erf(X / sp.sqrt(2))),
                  False, r"\operatorname{GELU}", "the Gaussian error linear unit")


def rnn_with(op: Op) -> Cell:
    """h_t = op(W x_t + U h_{t-1} + b): a plain RNN whose activation is the new row."""
    return Cell(name=f"rnn_{op.name}", inputs=(("x", "D"),), state=(("h", "H"),), output="h",
                stages=(affine("a", ("x", "h_prev"), ("W", "U"), "b", "H"),
                        elementwise(op, "h", "a")))


def _loss(derivation, params, xs, h0, dhs):
    hs, stateT, *_ = run(derivation, params, xs, {"h": h0}, dhs, {"h": np.zeros_like(h0)})
    return float((hs * dhs).sum())


@pytest.mark.parametrize("op", [HARD_SIGMOID, GELU], ids=lambda op: op.name)
def test_a_new_row_is_derived_and_its_gradients_match_finite_differences(op):
    assert op not in OPS   # not in the package's table: the row alone carries the operation
    derivation = derive(rnn_with(op))
    partial = derivative(op, 0).expr
    points = [sp.Rational(n, 7) for n in (-13, -4, 3, 11)]   # away from the hard sigmoid's kinks
    for x in points:   # SymPy's derivative of the row's own definition
        assert sp.N(partial.subs(X, x) - sp.diff(op.expr, X).subs(X, x), 30) == 0
    rng = np.random.default_rng(3)
    D, H, T, B = 3, 2, 3, 2
    params = {"W": rng.normal(size=(H, D)), "U": rng.normal(size=(H, H)) * 0.5,
              "b": rng.normal(size=H) * 0.3}
    xs, h0, dhs = rng.normal(size=(T, B, D)), rng.normal(size=(B, H)), rng.normal(size=(T, B, H))
    _, _, grads, *_ = run(derivation, params, xs, {"h": h0}, dhs, {"h": np.zeros((B, H))})
    eps = 1e-6
    for name, value in params.items():
        for index in np.ndindex(value.shape):
            up, down = ({**params, name: value.copy()} for _ in range(2))
            up[name][index] += eps
            down[name][index] -= eps
            numeric = (_loss(derivation, up, xs, h0, dhs) - _loss(derivation, down, xs, h0, dhs)) / (2 * eps)
            assert np.isfinite(grads[name][index])
            assert abs(grads[name][index] - numeric) <= 1e-6 * (1 + abs(numeric)), (name, index)


def test_a_wrong_row_is_caught_by_the_same_check():
    """The check above can fail: a row whose stable form is not its definition is refused."""
    from derive.errors import DeriveError
    wrong = Op("bad_gelu", (X,), GELU.expr, X / 2 * (1 + sp.tanh(X)), False, activation=True)
    with pytest.raises(DeriveError, match="numeric form of bad_gelu"):
        derivative(wrong, 0)


def test_a_new_row_gets_its_document_and_modules():
    """The hard sigmoid row, through the whole build: NumPy, PyTorch and JAX modules, the
    .tex and the .html; the NumPy module's gradients agree with finite differences."""
    from catalogue.entry import Entry
    from checks.gradcheck import check, load_module
    from lstm_derive.build import Build
    entry = Entry(rnn_with(HARD_SIGMOID), "a plain RNN with a hard sigmoid")
    files = Build("test").render(entry).files
    assert {"rnn_hard_sigmoid.py", "rnn_hard_sigmoid.tex", "rnn_hard_sigmoid.html",
            "torch/rnn_hard_sigmoid.py", "jax/rnn_hard_sigmoid.py"} <= set(files)
    assert "The hard sigmoid" in files["rnn_hard_sigmoid.tex"]
    assert r"\operatorname{hardsigmoid}" in files["rnn_hard_sigmoid.tex"]
    module = load_module(files["rnn_hard_sigmoid.py"], "rnn_hard_sigmoid")
    errors = check(module, 3, 2, 4, 3, seed=1)
    assert errors and all(np.isfinite(e) and e < 1e-6 for e in errors.values()), errors


def test_a_backend_that_cannot_spell_a_row_says_so_at_generation_time():
    """GELU's stable form uses erf: NumPy has none, so generating its module is one line naming
    the function; PyTorch spells it (torch.erf), and that module's gradients pass gradcheck."""
    from catalogue.entry import Entry
    from derive.errors import DeriveError
    from lstm_derive.build import Build
    entry = Entry(rnn_with(GELU), "a plain RNN with GELU")
    with pytest.raises(DeriveError) as error:
        Build("test").render(entry, only=".py")
    assert "\n" not in str(error.value) and "cannot spell the function erf" in str(error.value)
    torch = pytest.importorskip("torch")
    source = Build("test").render(entry, only="torch").files["torch/rnn_gelu.py"]
    assert "torch.erf(" in source
    namespace = {}
    exec(compile(source, "rnn_gelu_torch", "exec"), namespace)
    function = next(v for k, v in namespace.items() if k.endswith("Function") and k != "Function")
    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()
    xs, h0 = rand(3, 2, 4), rand(2, 3)
    params = [(0.5 * rand(*(3 if d == "H" else 4 for d in shape))).detach().requires_grad_()
              for shape in namespace["PARAMS"].values()]
    assert torch.autograd.gradcheck(function.apply, (xs, h0, *params))
