"""The calculus table: every rule comes from SymPy and matches brute force."""
import dataclasses
import numpy as np
import pytest
import sympy as sp

from derive import rules
from derive.errors import DeriveError
from derive.rules import OUT, X, Kind, affine_rule, derivative


@pytest.mark.parametrize("kind", [Kind.SIGMOID, Kind.TANH])
def test_activation_derivative_in_terms_of_output_matches_definition(kind):
    definition = rules.DEFINITIONS[kind].expr
    rewritten = derivative(kind, 0).expr
    assert rewritten.free_symbols == {OUT}
    for x in np.linspace(-6, 6, 25):
        brute = float(sp.diff(definition, X).subs(X, x))
        via_output = float(rewritten.subs(OUT, definition.subs(X, x)))
        assert via_output == pytest.approx(brute, rel=1e-12, abs=1e-15)


def test_activation_forms_are_the_classic_ones():
    s = OUT
    assert sp.expand(derivative(Kind.SIGMOID, 0).expr - s * (1 - s)) == 0
    assert sp.expand(derivative(Kind.TANH, 0).expr - (1 - s**2)) == 0


def test_product_and_sum_partials():
    assert derivative(Kind.MUL, 0).expr == rules.Y
    assert derivative(Kind.MUL, 1).expr == X
    assert derivative(Kind.ADD, 0).expr == 1 and derivative(Kind.ADD, 1).expr == 1


def test_a_wrong_numeric_form_is_rejected():
    wrong = dataclasses.replace(Kind.SIGMOID, name="wrong_sigmoid", numeric=sp.tanh(X))
    with pytest.raises(DeriveError, match="numeric form of wrong_sigmoid"):
        derivative(wrong, 0)


def test_a_kind_without_definition_names_itself():
    with pytest.raises(DeriveError, match="affine"):
        rules.definition(Kind.AFFINE)


def test_affine_vector_rule_matches_brute_force_at_concrete_sizes():
    """dW = delta x^T, dx = W^T delta, db = delta against sympy.diff of the written-out map."""
    rule = affine_rule()
    assert sp.simplify(rule.d_weight - rule.symbols["delta"][rule.symbols["p"]]
                       * rule.symbols["x"][rule.symbols["q"]]) == 0
    H, D = 2, 3
    W = sp.Matrix(H, D, lambda i, j: sp.Symbol(f"W{i}{j}"))
    x = sp.Matrix(D, 1, lambda i, _: sp.Symbol(f"x{i}"))
    b = sp.Matrix(H, 1, lambda i, _: sp.Symbol(f"b{i}"))
    delta = sp.Matrix(H, 1, lambda i, _: sp.Symbol(f"d{i}"))
    loss = (delta.T * (W * x + b))[0]   # L with dL/da = delta
    assert sp.Matrix(H, D, lambda i, j: sp.diff(loss, W[i, j])) == delta * x.T
    assert sp.Matrix(D, 1, lambda i, _: sp.diff(loss, x[i])) == W.T * delta
    assert sp.Matrix(H, 1, lambda i, _: sp.diff(loss, b[i])) == delta


def test_the_affine_check_rejects_a_forgotten_transpose():
    n = 2  # square, so the wrong rule dx = W delta even has the right shape
    W = sp.Matrix(n, n, lambda i, j: sp.Symbol(f"W{i}{j}"))
    x = sp.Matrix(n, 1, lambda i, _: sp.Symbol(f"x{i}"))
    delta = sp.Matrix(n, 1, lambda i, _: sp.Symbol(f"d{i}"))
    loss = (delta.T * (W * x))[0]
    brute = sp.Matrix(n, 1, lambda i, _: sp.diff(loss, x[i]))
    assert brute == W.T * delta
    assert brute != W * delta
