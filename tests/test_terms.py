"""Backward terms are SymPy expressions: one vocabulary, read by one evaluator and the printers.

The non-elementwise nodes (derive.terms: WT, RowSum, LossGrad, Carried, Outer) are asked
"which node are you?" only where an expression is evaluated (derive/interpret.py) or
spelled (the LaTeX notation's printer and the backends' printers); everyone else reads
branches, sources and whole expressions.  The transposed-weight and softmax terms are read
off the index-notation rules that SymPy derives.
"""
import ast
from pathlib import Path

import sympy as sp

from catalogue import get_cell
from derive import derive
from derive.terms import NON_ELEMENTWISE, WT, RowSum, text, value, vector_form

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("derive", "catalogue", "checks", "codegen", "lstm_derive")
TERM_CLASSES = {cls.__name__ for cls in NON_ELEMENTWISE}
MAY_ASK = ("derive/interpret.py", "derive/terms.py", "codegen/notation.py")


def _asks_node_class(tree) -> list[int]:
    """Lines with isinstance(x, <term class>) outside a printer's _print_ method."""
    printers = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("_print_")]
    inside = {id(c) for f in printers for c in ast.walk(f)}
    lines = []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and id(n) not in inside):
        if getattr(call.func, "id", None) == "isinstance" and len(call.args) == 2:
            names = {n.id for n in ast.walk(call.args[1]) if isinstance(n, ast.Name)}
            if names & TERM_CLASSES:
                lines.append(call.lineno)
    return sorted(set(lines))


def test_no_term_kind_switch_outside_the_evaluator_and_printers():
    offenders = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            source = path.read_text()
            assert "TermKind" not in source, f"{rel} still knows a term-kind enum"
            if rel in MAY_ASK or "_backend/" in rel:
                continue
            offenders += [f"{rel}:{n}" for n in _asks_node_class(ast.parse(source))]
    assert not offenders, f"switch on a term's class outside evaluator/printers: {offenders}"


def test_the_checker_above_finds_a_switch():
    tree = ast.parse("def f(t):\n    return 1 if isinstance(t.expr, WT) else 0\n")
    assert _asks_node_class(tree) == [2]
    tree = ast.parse("class P:\n    def _print_WT(self, e):\n        return isinstance(e, WT)\n")
    assert _asks_node_class(tree) == []


def test_transposed_weight_and_softmax_terms_come_from_the_index_rules():
    lstm = derive(get_cell("lstm"))
    assert lstm.adjoint("h_prev").expr == sum(
        (WT(value(f"U_{g}"), value(f"d_a_{g}")) for g in "figo"), sp.Integer(0))
    mlp = derive(get_cell("mlp_softmax"))
    y, dy = value("y"), value("d_y")
    (term,) = mlp.adjoint("a2").terms
    assert sp.expand(term.expr - (y * dy - y * RowSum(dy * y))) == 0
    assert text(term.expr) == "y*(d_y - sum(d_y*y))"


def test_vector_form_refuses_what_it_cannot_read():
    k, q = sp.Idx("k", 3), sp.Idx("q", 3)
    a = sp.IndexedBase("a")
    try:
        vector_form(a[k] * a[q], q, {a: value("a")})
    except ValueError as err:
        assert "cannot read" in str(err)
    else:
        raise AssertionError("a vector indexed by the wrong index was accepted")
