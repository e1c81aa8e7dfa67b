"""The stacked spelling of layer norms over column blocks (`codegen.schedule_norm`,
`codegen.program_norm`): the records it writes are the derivation's equations read on a
stacked view.  (The generated modules run them: tests/test_layernorm.py, test_torch_backend.py,
test_jax_backend.py.)"""
import pytest
import sympy as sp

import codegen.program as program_module
from catalogue.cells import CELLS
from codegen.program import program
from codegen.records import Assign, BlockSum, Reduce
from codegen.schedule import plan
from codegen.schedule_norm import Stacks, families
from derive.derivation import derive

NORMED = ["layernorm_lstm", "layernorm_gru"]


def unstacked(monkeypatch, name):
    """The program as it is without the stacked spelling."""
    with monkeypatch.context() as m:
        m.setattr(program_module, "stack_norms", lambda derivation, plan, prog: prog)
        return program(derive(CELLS[name].cell))


def per_block(expr, st):
    """expr with each BlockSum(t, G, n) written out: t read at block k for every k, summed."""
    stacked = {}
    for member, (seed, k, symbol) in st.sym.items():
        stacked.setdefault(symbol, {})[k] = member
    def expand(node):
        body, blocks = node.args[0], int(node.args[1])
        return sp.Add(*(body.xreplace({s: stacked[s][k] for s in body.free_symbols if s in stacked})
                        for k in range(blocks)))
    return expr.replace(lambda e: isinstance(e, BlockSum), expand)


def test_the_layernorm_lstm_families_are_its_stacked_gate_terms():
    derivation = derive(CELLS["layernorm_lstm"].cell)
    found = {f.name: f.members for f in families(derivation, plan(derivation))}
    assert list(found) == ["Z_" + n for n in ("zx", "zh", "e_zx", "gamma_x", "beta_x", "yx", "e_zh",
                                              "gamma_h", "beta_h", "yh", "s", "b", "a")]
    assert found["Z_a"] == ("a_f", "a_i", "a_g", "a_o") and found["Z_gamma_h"][0] == "gamma_h_f"
    st = Stacks.of(derivation.cell, families(derivation, plan(derivation)))
    assert st.columns == {"mu_x", "v_x", "r_x", "mu_h", "v_h", "r_h"}   # not mu_c: c is no stack


def test_the_gru_candidate_is_no_family():
    """Its r and z gates add their terms and biases, the candidate does otherwise: no stage
    family past the normalised terms."""
    derivation = derive(CELLS["layernorm_gru"].cell)
    found = [f.name for f in families(derivation, plan(derivation))]
    assert found == ["Z_" + n for n in ("zx", "zh", "e_zx", "gamma_x", "beta_x", "yx", "e_zh", "gamma_h",
                                        "beta_h", "yh")]


@pytest.mark.parametrize("name", ["lstm", "gru", "peephole_lstm", "lstmp"])
def test_cells_without_a_stacked_norm_are_unchanged(monkeypatch, name):
    assert program(derive(CELLS[name].cell)) == unstacked(monkeypatch, name)


@pytest.mark.parametrize("name", NORMED)
def test_block_sums_are_the_fork_sums_of_the_derivation(monkeypatch, name):
    derivation = derive(CELLS[name].cell)
    st = Stacks.of(derivation.cell, families(derivation, plan(derivation)))
    before = {r.target: r.expr for r in unstacked(monkeypatch, name).backward_loop
              if isinstance(r, Assign) and isinstance(r.target, str)}
    loop = program(derivation).backward_loop
    summed = [r for r in loop if isinstance(r, Assign) and r.expr.atoms(BlockSum)]
    assert len(summed) == 4   # d_r and d_mu of each of the two norms
    for r in summed:
        assert sp.expand(per_block(r.expr, st) - before[r.target]) == 0, r.label


@pytest.mark.parametrize("name", NORMED)
def test_stacked_gain_sums_are_the_blocks_sums(monkeypatch, name):
    derivation = derive(CELLS[name].cell)
    st = Stacks.of(derivation.cell, families(derivation, plan(derivation)))
    before = {r.target: r.source for r in unstacked(monkeypatch, name).backward_loop if isinstance(r, Reduce)}
    after = {r.target: r.source for r in program(derivation).backward_loop if isinstance(r, Reduce)}
    for f in (f for f in st.fams if f.param):
        for k, member in enumerate(f.members):
            block = after[f"d_{f.name}"].xreplace({symbol: m for m, (_, j, symbol) in st.sym.items() if j == k})
            assert sp.expand(block - before[f"d_{member}"]) == 0, member


def test_a_wrong_block_sum_is_caught():
    derivation = derive(CELLS["layernorm_lstm"].cell)
    st = Stacks.of(derivation.cell, families(derivation, plan(derivation)))
    r = next(r for r in program(derivation).backward_loop if isinstance(r, Assign) and r.target == "d_r_h")
    wrong = r.expr.replace(lambda e: isinstance(e, BlockSum), lambda e: BlockSum(e.args[0], 3, e.args[2]))
    original = next(x.expr for x in derive(CELLS["layernorm_lstm"].cell).adjoints if x.target == "r_h")
    assert sp.expand(per_block(r.expr, st) - original) == 0
    assert sp.expand(per_block(wrong, st) - original) != 0


def test_a_family_whose_equations_are_not_one_template_is_left_as_it_was(monkeypatch):
    stacked = program(derive(CELLS["layernorm_lstm"].cell))
    with monkeypatch.context() as m:
        m.setattr(Stacks, "common", lambda self, exprs: None)
        assert program(derive(CELLS["layernorm_lstm"].cell)) == unstacked(monkeypatch, "layernorm_lstm")
    assert stacked != unstacked(monkeypatch, "layernorm_lstm")
