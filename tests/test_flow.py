"""Gradient flow: the one-step state Jacobians, the output heads, the measured norms.

The Jacobians are checked against finite differences of one step of the interpreted
derivation (a different code path from the forward-mode chain rule that produced them);
the output heads against finite differences of their own generated modules.
"""
import numpy as np
import pytest
import sympy as sp

from codegen.emit_feedforward import emit_feedforward
from catalogue import Entry, get_cell, get_entry
from derive import derive
from checks.gradcheck import check, load_module, worst
from derive.heads import output_heads
from derive.interpret import run
from derive.jacobians import state_jacobians
from lstm_derive.build import Build
from lstm_derive.measure import gate_biases

RECURRENT = ["lstm", "peephole_lstm", "cifg_lstm", "gru", "gru_reset_after", "rnn", "lstmp", "indrnn", "slstm"]
SIZES = {"D": 3, "H": 4, "P": 2}


def _problem(cell, seed=0):
    rng = np.random.default_rng(seed)
    params = {name: rng.normal(scale=0.7, size=tuple(SIZES[s] for s in shape))
              for name, shape in cell.params()}
    state0 = {s: rng.normal(size=(1, SIZES[size])) for s, size in cell.state}
    xs = rng.normal(size=(1, 1, SIZES["D"]))
    return params, state0, xs


def _step(derivation, params, state0, xs):
    cell = derivation.cell
    zeros = {s: np.zeros_like(v) for s, v in state0.items()}
    dhs = np.zeros((1, 1, SIZES[cell.sizes()[cell.output]]))
    _, state, _, _, _, trace = run(derivation, params, xs, state0, dhs, zeros)
    return state, trace[0]


def _path_matrix(path, values, params, rows):
    """Evaluate a path right to left; `rows` is the size of the path's output."""
    size = rows
    matrix = None
    for n, d in enumerate(path.diags):
        names = sorted(d.free_symbols, key=str)
        entries = sp.lambdify(names, d, "numpy")(
            *[params[str(v)] if str(v) in params else values[str(v)][0] for v in names])
        block = np.diag(np.broadcast_to(np.asarray(entries, float), (size,)))
        matrix = block if matrix is None else matrix @ block
        if n < len(path.weights):
            weight = params[path.weights[n]]
            matrix = matrix @ weight
            size = weight.shape[1]
    return matrix


@pytest.mark.parametrize("name", RECURRENT)
def test_state_jacobians_match_finite_differences_of_one_step(name):
    derivation = derive(get_cell(name))
    cell = derivation.cell
    params, state0, xs = _problem(cell)
    _, values = _step(derivation, params, state0, xs)
    for j in state_jacobians(derivation):
        rows = SIZES[cell.sizes()[j.state]]
        want = np.zeros((rows, state0[j.previous].shape[1]))
        got = sum((_path_matrix(p, values, params, rows) for p in j.paths), np.zeros_like(want))
        for q in range(want.shape[1]):
            up, down = ({**state0, j.previous: state0[j.previous] + sign * 1e-6 * np.eye(want.shape[1])[q]}
                        for sign in (1, -1))
            want[:, q] = (_step(derivation, params, up, xs)[0][j.state]
                          - _step(derivation, params, down, xs)[0][j.state])[0] / 2e-6
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8, err_msg=str(j), equal_nan=False)


def test_the_jacobian_check_can_fail(monkeypatch):
    """A forward mode that forgets the elementwise factors must fail the same comparison."""
    import derive.jacobians as jacobians
    monkeypatch.setattr(jacobians.Path, "times_diag", lambda self, factor: self)
    with pytest.raises(AssertionError):
        test_state_jacobians_match_finite_differences_of_one_step("lstm")


def test_the_additive_paths_are_found_where_they_exist():
    free = {name: [str(j) for j in state_jacobians(derive(get_cell(name)))
                   if j.state == j.previous and j.weight_free] for name in RECURRENT}
    assert free["lstm"] == ["dc[t]/dc[t-1] = diag(f)"]
    assert free["rnn"] == []
    assert any("diag(z)" in text for text in free["gru"])
    for name, biases in (("lstm", ("b_f",)), ("gru", ("b_z",)), ("rnn", ())):
        derivation = derive(get_cell(name))
        assert gate_biases(derivation, state_jacobians(derivation)) == biases


def test_measured_gradient_norms_show_the_additive_path():
    curves = dict(Build().document(get_entry("lstm")).flow.curves)   # measured with the module
    plain, opened, rnn = curves["lstm"], curves["lstm, b_f = 3"], curves["rnn"]
    assert rnn[-1] < 1e-3 * rnn[0]                 # the plain RNN's gradient vanishes
    assert opened[-1] > 1e3 * rnn[-1]              # an open forget gate carries it
    assert opened[-1] > 1e3 * plain[-1]            # ... which the half-open gate does not


@pytest.mark.parametrize("head", [0, 1])
def test_output_heads_pass_the_gradient_check(head):
    cell = output_heads(get_cell("lstm"))[head]
    entry = Entry(cell, "output head", size_args=(("H", "hidden_size"), ("K", "output_size")))
    module = load_module(emit_feedforward(derive(cell), entry, "test"), cell.name)
    errors = check(module, 1, 3, 4, 5)
    assert worst(errors.values()) < 1e-8, errors
