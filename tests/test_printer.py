"""The NumPy backend's printer: the backward vocabulary spelled, unknown functions refused
when the module is generated (one line naming the function), never at run time."""
import dataclasses

import pytest
import sympy as sp

from catalogue.cells import get_cell, get_entry
from codegen.numpy_backend.emit import emit_numpy
from codegen.numpy_backend.printer import expr_code
from derive import DeriveError, derive
from derive.terms import WT, Carried, LossGrad, Outer, RowSum, adjoint, value

a, y, W = value("a"), value("y"), value("W")


@pytest.mark.parametrize("expr, code", [
    (WT(W, adjoint("a")), "d_a @ W"),
    (Outer(adjoint("a"), value("x")), "d_a.T @ x"),
    (LossGrad(value("h")) + Carried(value("h")), "d_h_next + dhs[t]"),
    (y * RowSum(adjoint("y") * y), "y*(d_y*y).sum(axis=-1, keepdims=True)"),
    (y * WT(W, adjoint("a")), "y*(d_a @ W)"),
    ((a + sp.Abs(a)) / 2, "numpy.maximum(a, 0)"),
])
def test_the_backward_vocabulary_is_spelled(expr, code):
    assert expr_code(expr) == code


def test_an_unspellable_function_is_refused_at_generation_time_in_one_line():
    derivation = derive(get_cell("rnn"))
    forward = tuple(dataclasses.replace(eq, numeric=sp.erf(value(eq.stage.inputs[0])))
                    if eq.numeric is not None else eq for eq in derivation.forward)
    with pytest.raises(DeriveError) as error:
        emit_numpy(dataclasses.replace(derivation, forward=forward), get_entry("rnn"), "test")
    message = str(error.value)
    assert "\n" not in message and "cannot spell the function erf" in message
