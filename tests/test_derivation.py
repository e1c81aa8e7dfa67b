"""The reverse sweep: forks found from the graph, BPTT carries, the printed derivation."""
import numpy as np
import pytest
import sympy as sp

from conftest import random_problem
from catalogue import get_cell
from derive import derive
from derive.derivation import LOSS_BRANCH, NEXT_STEP_BRANCH
from derive.terms import Carried, LossGrad
from derive.interpret import run


@pytest.fixture(scope="module")
def derivation():
    return derive(get_cell("lstm"))


def branches(derivation, value):
    return [t.branch for t in derivation.adjoint(value).terms]


def test_forks_are_found_from_the_graph(derivation):
    forks = {a.target: [t.branch for t in a.terms] for a in derivation.adjoints if a.is_fork}
    assert forks == {
        "h": ["loss", "next step"],
        "c": ["k", "next step"],
        "h_prev": ["a_f", "a_i", "a_g", "a_o"],
        "x": ["a_f", "a_i", "a_g", "a_o"],
    }


def test_every_value_is_finished_before_it_is_used(derivation):
    done = set()
    for adj in derivation.adjoints:
        for term in adj.terms:
            if term.branch not in (LOSS_BRANCH, NEXT_STEP_BRANCH):   # read from a later stage
                assert term.source in done, (adj.target, term.source)
        done.add(adj.target)


def test_carries_and_parameter_sums(derivation):
    assert derivation.adjoint("c").terms[-1].expr == Carried(sp.Symbol("c", real=True))
    assert derivation.adjoint("h").terms[0].expr == LossGrad(sp.Symbol("h", real=True))
    assert derivation.adjoint("c").terms[-1].branch == NEXT_STEP_BRANCH
    assert {g.param: g.input for g in derivation.param_grads}["U_g"] == "h_prev"
    assert {g.param: g.input for g in derivation.param_grads}["b_o"] is None


def test_activation_partials_reuse_forward_values(derivation):
    partial = {(p.stage, p.wrt): str(p.expr) for p in derivation.partials}
    assert partial[("f", "a_f")] == "f*(1 - f)"
    assert partial[("k", "c")] == "1 - k**2"
    assert partial[("m", "c_prev")] == "f"


def test_print_shows_one_stage_or_step_per_line(derivation):
    text = str(derivation)
    assert "(F13) h = mul(o, k)" in text
    assert "(B3) d_c = d_k*(1 - k**2) + d_c_prev[t+1]    [fork: k, next step]" in text
    assert len([l for l in text.splitlines() if l.startswith("  (B")]) == len(derivation.adjoints)


def test_backward_reads_only_cached_values(derivation):
    assert derivation.cached_values() == ("x", "h_prev", "c_prev", "f", "i", "g", "o", "k")


def test_interpreted_derivation_matches_hand_written(lstm, reference, derivation):
    params, xs, state0, dhs, dstateT = random_problem(lstm, 4, 3, 5, 2, seed=7)
    hs, stateT, grads, dxs, dstate0, _ = run(derivation, params, xs, state0, dhs, dstateT)
    ref_hs, _, cache = reference.forward(params, xs, state0)
    ref_grads, ref_dxs, ref_dstate0 = reference.backward(params, cache, dhs, dstateT)
    np.testing.assert_allclose(hs, ref_hs, rtol=1e-12, atol=1e-14, equal_nan=False)
    for name in params:
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-10, atol=1e-13, equal_nan=False)
    np.testing.assert_allclose(dxs, ref_dxs, rtol=1e-10, atol=1e-13, equal_nan=False)
    for s in ("h", "c"):
        np.testing.assert_allclose(dstate0[s], ref_dstate0[s], rtol=1e-10, atol=1e-13, equal_nan=False)
