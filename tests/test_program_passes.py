"""The record passes the PyTorch backend adds (`codegen.program_hoist`, `program_recompute`),
checked on the records of every recurrent cell: they keep the meaning of each equation.
(The generated modules run them: tests/test_torch_backend.py.)"""
import pytest
import sympy as sp

from catalogue.cells import CELLS
from codegen.program import program
from codegen.program_hoist import hoist
from codegen.records import Assign, View
from derive.derivation import derive
from derive.terms import Carried, LossGrad

RECURRENT = [name for name, entry in CELLS.items() if entry.cell.recurrent]


def hoisted(name):
    before = program(derive(CELLS[name].cell))
    return before, hoist(before)


def unhoist(prog, expr):
    """expr with each hoisted symbol J_... replaced by the factor computed before the loop."""
    factors = {sp.Symbol(r.target[:-len("_seq")], real=True): r.expr for r in prog.backward_pre
               if isinstance(r, Assign) and isinstance(r.target, str) and r.target.startswith("J_")}
    return expr.xreplace(factors)


@pytest.mark.parametrize("name", RECURRENT)
def test_hoisting_keeps_every_equation_and_moves_only_forward_values(name):
    before, after = hoisted(name)
    old = [r for r in before.backward_loop if isinstance(r, Assign)]
    new = [r for r in after.backward_loop if isinstance(r, Assign)]
    assert len(old) == len(new)
    for a, b in zip(old, new):
        assert sp.simplify(unhoist(after, b.expr) - a.expr) == 0, (a.label, a.expr, b.expr)
    moved = [r for r in after.backward_pre if isinstance(r, Assign) and r.target.startswith("J_")]
    for r in moved:
        assert not r.expr.atoms(LossGrad, Carried)
        assert not any(s.name.startswith("d_") for s in r.expr.free_symbols)
    loop_views = {r.name for r in after.backward_loop if isinstance(r, View)}
    assert {r.target[:-len("_seq")] for r in moved} <= loop_views


def test_hoisting_moves_the_lstm_local_derivatives_and_the_check_can_fail():
    before, after = hoisted("lstm")
    moved = {str(r.expr) for r in after.backward_pre if isinstance(r, Assign)
             and isinstance(r.target, str) and r.target.startswith("J_")}
    assert moved == {"1 - k**2", "1 - Z_g**2", "Z_f_i_o*(1 - Z_f_i_o)"}
    a = next(r for r in before.backward_loop if isinstance(r, Assign) and r.label.startswith("(B3)"))
    b = next(r for r in after.backward_loop if isinstance(r, Assign) and r.label.startswith("(B3)"))
    wrong = b.expr.xreplace({sp.Symbol("J_B3", real=True): sp.Symbol("k", real=True)})
    assert sp.simplify(unhoist(after, wrong) - a.expr) != 0
