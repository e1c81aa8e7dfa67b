"""The cell family's public surface: names, shapes, the loss heads, the documents."""
import dataclasses

import numpy as np
import pytest

from conftest import GENERATED, generated
from catalogue.cells import CELLS
from codegen.emit_latex import TITLES


def test_parameter_names_follow_the_common_notation():
    params = {name: list(generated(name).PARAMS) for name in CELLS}
    assert "W_i" not in params["cifg_lstm"] and "U_i" not in params["cifg_lstm"]
    assert params["peephole_lstm"][-3:] == ["p_f", "p_i", "p_o"]
    assert params["gru_reset_after"][-1] == "b_hn" and "b_hn" not in params["gru"]
    assert params["rnn"] == ["W", "U", "b"]
    assert params["mlp"] == params["mlp_softmax"] == ["W1", "W2", "b1", "b2"]
    assert generated("gru").STATE == generated("rnn").STATE == ("h",)


def _clashes(cells):
    """(cell, compared cell, letter) -> the two meanings, for letters that mean two things."""
    clashes = {}
    for entry in cells.values():
        if not entry.cell.recurrent:
            continue
        other = cells[entry.compare or "lstm"]
        theirs = {stage.name: stage.note for stage in other.cell.stages}
        notes = " ".join(entry.notes)
        for stage in entry.cell.stages:
            them = theirs.get(stage.name)
            if them is None or stage.name in ("h", "i") or them in stage.note or stage.note in them:
                continue
            if stage.name in entry.cell.state_names and f"${stage.name}_t" in notes:
                continue
            clashes[(entry.name, other.name, stage.name)] = (stage.note, them)
    return clashes


def test_no_stage_name_means_two_things_in_documents_that_compare():
    """A cell's document compares it with another (the GRU with the LSTM, gru_reset_after with
    the GRU, IndRNN with the RNN, the sLSTM with the LSTM): a letter both use names the same
    value, or a qualified form of it (the sLSTM's stabilised forget gate f), except a state
    named by the cell's own paper (the sLSTM's normaliser n and stabiliser m), which the
    cell's notes then define where the comparison is made."""
    assert not _clashes(CELLS), _clashes(CELLS)


def test_the_stage_name_check_can_fail():
    """The GRU's old letter m (for the kept part of the state) clashes with the LSTM's m."""
    gru = CELLS["gru"]
    stages = tuple(dataclasses.replace(s, name="m") if s.name == "h_kept" else s
                   for s in gru.cell.stages)
    old = dataclasses.replace(gru, cell=dataclasses.replace(gru.cell, stages=stages))
    assert ("gru", "lstm", "m") in _clashes({**CELLS, "gru": old})


def test_projection_lstm_sizes():
    lstmp = generated("lstmp")
    params = lstmp.init_params(3, 5, 2, seed=0)
    assert params["U_f"].shape == (5, 2) and params["W_hr"].shape == (2, 5)
    hs, stateT, _ = lstmp.forward(params, np.zeros((4, 1, 3)))
    assert hs.shape == (4, 1, 2) and stateT["h"].shape == (1, 2) and stateT["c"].shape == (1, 5)


def test_softmax_cross_entropy_logit_gradient_is_y_minus_one_hot():
    mlp = generated("mlp_softmax")
    params = mlp.init_params(4, 3, 5, seed=2)
    x = np.random.default_rng(2).normal(size=(6, 4))
    labels = np.array([0, 4, 2, 2, 1, 3])
    y, cache = mlp.forward(params, x)
    L, dy = mlp.loss(y, labels)
    grads, _ = mlp.backward(params, cache, dy)
    one_hot = np.eye(5)[labels]
    np.testing.assert_allclose(y.sum(axis=1), 1, rtol=1e-12, equal_nan=False)
    np.testing.assert_allclose(L, -np.log(y[np.arange(6), labels]).sum(), rtol=1e-12, equal_nan=False)
    np.testing.assert_allclose(grads["b2"], (y - one_hot).sum(axis=0), rtol=1e-10, atol=1e-12, equal_nan=False)
    np.testing.assert_allclose(grads["W2"], (y - one_hot).T @ cache["h"], rtol=1e-10, atol=1e-12, equal_nan=False)


def test_squared_error_head():
    mlp = generated("mlp")
    y, target = np.array([[0.2, 0.9]]), np.array([[0.0, 1.0]])
    L, dy = mlp.loss(y, target)
    assert L == pytest.approx(0.5 * (0.04 + 0.01))
    np.testing.assert_allclose(dy, y - target, equal_nan=False)


@pytest.mark.parametrize("target, message", [
    (np.array([0.5, 1.0]), "integer labels"), (np.array([0, 7]), r"lie in \[0, 3\)"),
    (np.array([0, 1, 2]), "integer labels of shape"),
])
def test_bad_labels_are_named(target, message):
    mlp = generated("mlp_softmax")
    with pytest.raises(ValueError, match=message):
        mlp.loss(np.full((2, 3), 1 / 3), target)


def test_feedforward_shapes_are_checked():
    mlp = generated("mlp")
    params = mlp.init_params(4, 3, 2)
    with pytest.raises(ValueError, match=r"x has shape \(5, 3\), expected \(B, D\) = \(5, 4\)"):
        mlp.forward(params, np.zeros((5, 3)))
    y, cache = mlp.forward(params, np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"dy has shape \(5, 3\), expected \(5, 2\)"):
        mlp.backward(params, cache, np.zeros((5, 3)))


@pytest.mark.parametrize("name", [n for n in CELLS if CELLS[n].compare not in (None, n)])
def test_each_document_says_how_the_cell_differs_from_the_cell_it_is_compared_with(name):
    """The LSTM, or the cell the entry names (gru_reset_after: the GRU as published)."""
    tex = (GENERATED / f"{name}.tex").read_text()
    compare = CELLS[name].compare   # named in words (GRU, reset-after GRU) or, without them, as code
    assert any(f"differs from the {a}}}" in tex
               for a in (TITLES.get(compare, compare.upper()), r"\code{%s}" % compare.replace("_", r"\_")))
    assert CELLS[name].notes


@pytest.mark.parametrize("name", list(CELLS))
def test_float32_in_float32_out(name):
    module = generated(name)
    params = module.init_params(*[3] * len(module.SIZES), seed=0, dtype=np.float32)
    if hasattr(module, "STATE"):
        hs, _, cache = module.forward(params, np.ones((2, 2, 3), np.float32))
        grads, dxs, _ = module.backward(params, cache, np.ones_like(hs))
    else:
        hs, cache = module.forward(params, np.ones((2, 3), np.float32))
        grads, dxs = module.backward(params, cache, np.ones_like(hs))
    assert hs.dtype == dxs.dtype == np.float32
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}
