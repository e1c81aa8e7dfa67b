"""The record passes the PyTorch backend adds (`codegen.program_hoist`, `program_recompute`,
`program_reduce`),
checked on the records of every recurrent cell: they keep the meaning of each equation.
(The generated modules run them: tests/test_torch_backend.py.)"""
from dataclasses import replace

import pytest
import sympy as sp

from catalogue.cells import CELLS
from codegen.program import program
from codegen.program_hoist import hoist
from codegen.program_reduce import reduce_after
from codegen.records import Assign, Reduce, Ref, View
from codegen.torch_backend.common import fused_products, shared
from codegen.torch_backend.emit import emit_torch
from codegen.torch_backend.spell import spell
from derive.derivation import derive
from derive.terms import Carried, LossGrad, RowMean

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


def reduced(name):
    before = hoist(program(derive(CELLS[name].cell)))
    return before, reduce_after(before, CELLS[name].cell.sizes())


def loop_aliases(prog):
    """Symbols the loop merely renames (d_s_f = d_a_f), each mapped to what it renames, to the root."""
    alias = {r.target: r.expr for r in prog.backward_loop
             if isinstance(r, Assign) and isinstance(r.target, str) and r.expr.is_Symbol}
    return {sp.Symbol(n, real=True): _root(e, alias) for n, e in alias.items()}


def _root(expr, alias):
    while expr.name in alias:
        expr = alias[expr.name]
    return expr


@pytest.mark.parametrize("name", RECURRENT)
def test_sums_after_the_loop_are_the_loop_sums_over_stored_adjoints(name):
    before, after = reduced(name)
    sums = {r.label: r for r in before.backward_loop if isinstance(r, Reduce)}
    kept = {r.label: r for r in after.backward_loop if isinstance(r, Reduce)}
    moved = {r.label: r for r in after.backward_post if isinstance(r, Reduce) and r.steps}
    assert set(sums) == set(kept) | set(moved) and not set(kept) & set(moved)
    aliases = loop_aliases(before)
    stored = {r.target.name[:-len("_seq")] for r in after.backward_loop
              if isinstance(r, Assign) and isinstance(r.target, Ref) and r.target.name.endswith("_seq")}
    # or an adjoint written into (columns of) a step's row of a gradient buffer of every step,
    # through views: a stacked norm's d_yh and its blocks (codegen.program_norm)
    views = {r.name: r.ref for r in after.backward_loop if isinstance(r, View)}
    stored |= {name for name in views if name.startswith("d_") and on_every_step(name, views)}
    for label, r in moved.items():
        assert sp.simplify(r.source - sums[label].source.xreplace(aliases)) == 0, label
        assert {s.name for s in r.source.free_symbols if s.name.startswith("d_")} <= stored, label


def on_every_step(name, views) -> bool:
    """Whether a view (of a view ...) of name is a step's row of a gradient buffer of every step."""
    while name in views:
        ref = views[name]
        if ref.step == "t" and ref.name.startswith("d_") and ref.name.endswith("_seq"):
            return True
        name = ref.name
    return False


def test_the_layernorm_lstm_loop_keeps_no_sum_and_the_check_can_fail():
    before, after = reduced("layernorm_lstm")
    # the stacked biases, the gains and shifts of the two stacked norms (one sum each), gamma_c, beta_c
    assert sum(isinstance(r, Reduce) for r in before.backward_loop) == 7
    assert not any(isinstance(r, Reduce) for r in after.backward_loop)
    r = next(r for r in after.backward_post if isinstance(r, Reduce) and r.label == "(P29)")
    wrong = r.source.xreplace({sp.Symbol("r_c", real=True): sp.Symbol("mu_c", real=True)})
    original = next(s for s in before.backward_loop if isinstance(s, Reduce) and s.label == "(P29)")
    assert sp.simplify(wrong - original.source.xreplace(loop_aliases(before))) != 0


def loop_lines(text):
    """The lines inside the `for t in ...` loops of a generated module."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("    for t in "):
            inside = True
        elif inside and not line.startswith("        "):
            inside = False
        elif inside:
            lines.append(line)
    return lines


@pytest.mark.parametrize("name", RECURRENT)
def test_torch_loops_slice_nothing_per_step(name):
    """Every part of a buffer a step reads is bound before the loop (`codegen.torch_backend.loop_refs`)."""
    text = emit_torch(derive(CELLS[name].cell), CELLS[name], "test")
    assert loop_lines(text)
    assert not [line for line in loop_lines(text) if "[:, " in line]


def test_the_lstm_loop_would_slice_without_loop_refs_so_the_check_can_fail():
    prog = hoist(program(derive(CELLS["lstm"].cell)))
    assert any("[:, " in line for line in spell(prog.forward_loop))


def inlined(records):
    """Each Assign's expression with the temporaries `shared` introduced substituted back."""
    temps, out = {}, []
    for r in records:
        if isinstance(r, Assign) and isinstance(r.target, str) and r.target.startswith("_cse"):
            temps[sp.Symbol(r.target, real=True)] = r.expr.xreplace(temps)
        elif isinstance(r, Assign):
            out.append((r.label, r.target, r.expr.xreplace(temps)))
    return out


@pytest.mark.parametrize("name", RECURRENT)
def test_shared_sub_expressions_keep_every_equation(name):
    prog = reduce_after(hoist(program(derive(CELLS[name].cell))), CELLS[name].cell.sizes())
    for loop in (prog.forward_loop, prog.backward_loop):
        before = [(r.label, r.target, r.expr) for r in loop if isinstance(r, Assign)]
        after = inlined(shared(loop))
        assert [(label, target) for label, target, _ in before] == [(label, target) for label, target, _ in after]
        for (label, _, a), (_, _, b) in zip(before, after):
            assert sp.simplify(a - b) == 0, label


def test_the_layernorm_lstm_mean_gradient_is_computed_once_and_the_check_can_fail():
    prog = reduce_after(hoist(program(derive(CELLS["layernorm_lstm"].cell))), CELLS["layernorm_lstm"].cell.sizes())
    after = shared(prog.backward_loop)
    # the four blocks' share of the mean, d_e_zh_k, is one value of the stacked norm (program_norm)
    once = [r for r in after if isinstance(r, Assign) and RowMean(sp.Symbol("d_v_h", real=True)) in r.expr.atoms(RowMean)]
    assert len(once) == 1
    wrong = [replace(r, expr=2 * r.expr) if r is once[0] else r for r in after]
    before = [r.expr for r in prog.backward_loop if isinstance(r, Assign)]
    assert any(sp.simplify(a - b) != 0 for a, (_, _, b) in zip(before, inlined(wrong)))


@pytest.mark.parametrize("name", RECURRENT)
def test_fused_products_keep_every_equation(name):
    loop = hoist(program(derive(CELLS[name].cell))).forward_loop
    products = {r.label: r for r in loop if isinstance(r, Assign) and isinstance(r.target, str)}
    sums = {r.label: r for r in loop if isinstance(r, Assign)}
    for r in fused_products(loop):
        if not isinstance(r, Assign) or r.label in sums:
            continue
        first, second = r.label.split(" ", 1)   # the product's label, then the sum's
        product, original = products[first], sums[second]
        expected = original.expr.xreplace({sp.Symbol(product.target, real=True): product.expr})
        assert sp.simplify(r.expr - expected) == 0 and r.target == original.target, r.label


def test_the_lstm_cell_state_is_one_addcmul_and_the_check_can_fail():
    loop = hoist(program(derive(CELLS["lstm"].cell))).forward_loop
    fused = {r.label: r for r in fused_products(loop) if isinstance(r, Assign)}
    c = fused["(F9) (F11)"].expr
    f, i, c_prev, n = (sp.Symbol(s, real=True) for s in ("f", "i", "c_prev", "n"))
    assert sp.simplify(c - (c_prev*f + n)) == 0
    assert sp.simplify(c.xreplace({f: i}) - (c_prev*f + n)) != 0
    assert "(F9)" not in fused
