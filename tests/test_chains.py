"""The factors the backward multiplies its roots' adjoints by (`codegen.program_chain`), checked
against the forward pass itself: a chain's factor must be the partial derivative of its root's
value with respect to the value whose adjoint it gives, the forward's stages written out and
differentiated by SymPy here, at a random point of the forward pass.  The module's gradients
are checked numerically by tests/test_numeric.py and tests/test_generated.py."""
from dataclasses import replace

import pytest
import sympy as sp

from catalogue.cells import CELLS
from codegen.program import program
from codegen.program_chain import Chains, chains
from codegen.schedule import plan
from derive.derivation import derive

RECURRENT = [name for name, entry in CELLS.items() if entry.cell.recurrent]


def _point(derivation, rng):
    """Every forward value at a random point: affine outputs, inputs and states drawn, the
    elementwise stages evaluated in order."""
    cell = derivation.cell
    values = {sp.Symbol(x, real=True): sp.Float(rng.uniform(-1, 1)) for x in cell.input_names}
    values |= {sp.Symbol(f"{s}_prev", real=True): sp.Float(rng.uniform(0.1, 1)) for s in cell.state_names}
    for eq in derivation.forward:
        name = sp.Symbol(eq.stage.name, real=True)
        values[name] = sp.Float(rng.uniform(-1, 1)) if eq.numeric is None else eq.numeric.xreplace(values)
    return values


def _value(derivation, name, leaves):
    """The forward value `name` written out down to `leaves` (and to affine outputs)."""
    numeric = {eq.stage.name: eq.numeric for eq in derivation.forward}
    if name in leaves or numeric.get(name) is None:
        return sp.Symbol(name, real=True)
    return numeric[name].xreplace({s: _value(derivation, s.name, leaves)
                                   for s in numeric[name].free_symbols})


def mismatches(derivation, found: Chains, seed=0) -> list[str]:
    """The (target, root) pairs whose stored factor differs from d root / d target."""
    import numpy as np
    point = _point(derivation, np.random.default_rng(seed))
    cell = derivation.cell
    pairs = [(t, b, f) for t, (b, f, _) in found.chained.items()
             if plan(derivation).group_of(t) is not None or t.endswith("_prev")]
    pairs += [(t, b, f) for t, (factors, _, _) in found.roots.items() for b, f in factors.items()]
    bad = []
    for target, base, factor in pairs:
        leaves = {target} | set(cell.input_names) | (set(found.roots) - {base})
        want = sp.diff(_value(derivation, base, leaves), sp.Symbol(target, real=True))
        if abs(float(want.xreplace(point) - factor.xreplace(point))) > 1e-9:
            bad.append(f"{target} from {base}")
    return bad


@pytest.mark.parametrize("name", RECURRENT)
def test_every_factor_is_the_derivative_of_its_root_through_the_forward(name):
    derivation = derive(CELLS[name].cell)
    found = chains(derivation, plan(derivation))
    if found is None:
        pytest.skip("no chains: the cell keeps one adjoint per value")
    assert mismatches(derivation, found) == []


def test_the_check_catches_a_wrong_factor():
    derivation = derive(CELLS["lstm"].cell)
    found = chains(derivation, plan(derivation))
    base, factor, labels = found.chained["a_f"]
    wrong = replace(found, chained=found.chained | {"a_f": (base, factor * 2, labels)})
    assert mismatches(derivation, wrong) == ["a_f from c"]


def test_the_lstm_backward_loop_keeps_the_fork_sums_the_multiplications_and_the_product():
    prog = program(derive(CELLS["lstm"].cell), chains=True)
    work = [r for r in prog.backward_loop if type(r).__name__ != "View"]
    assert len(work) <= 9 and prog.factors   # d_h, d_c, two multiplications, d_c_prev, d_h_prev, ...


def test_a_cell_whose_factors_would_need_more_memory_keeps_one_adjoint_per_value():
    prog = program(derive(CELLS["gru"].cell), chains=True)
    assert prog.factors == () and prog == program(derive(CELLS["gru"].cell))


def test_a_parameter_gradient_summed_in_the_loop_keeps_one_adjoint_per_value():
    derivation = derive(CELLS["peephole_lstm"].cell)
    assert any(g.stage is None for g in derivation.param_grads)   # the peepholes p_f, p_i, p_o
    assert chains(derivation, plan(derivation)) is None


@pytest.mark.parametrize("name", ["lstm", "cifg_lstm"])
@pytest.mark.parametrize("checkpoint", [None, 3])
def test_the_numpy_module_with_chains_computes_what_the_committed_one_does(name, checkpoint, monkeypatch,
                                                                          tmp_path):
    """NumPy modules are generated without the chains (their factor pass cost more than the
    backward calls it saved, measured on this machine); the option stays for a machine where it
    pays, so a module generated with it must give the committed module's outputs and gradients,
    checkpointed too (the factors are then computed per stretch inside backward)."""
    import numpy as np
    from conftest import generated, load_file, random_problem
    from codegen.numpy_backend import emit
    monkeypatch.setattr(emit, "program", lambda derivation, **_: program(derivation, chains=True))
    path = tmp_path / f"{name}.py"
    path.write_text(emit.emit_numpy(derive(CELLS[name].cell), CELLS[name], "test"))
    assert "def _factors(" in path.read_text()
    results = []
    for module in (generated(name), load_file(path, f"chains_{name}")):
        params, xs, state0, dhs, dstateT = random_problem(module, 7, 3, 4, 5, seed=2)
        hs, stateT, cache = module.forward(params, xs, state0, checkpoint=checkpoint)
        grads, dxs, dstate0 = module.backward(params, cache, dhs, dstateT)
        results.append([hs, dxs, *stateT.values(), *grads.values(), *dstate0.values()])
    for ours, committed in zip(*results):
        assert np.isfinite(ours).all()
        np.testing.assert_allclose(ours, committed, rtol=1e-12, atol=1e-12)
