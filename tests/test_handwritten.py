"""Generated gradients against the independently hand-written reference (tests/reference_lstm.py)."""
import numpy as np
import pytest

from conftest import random_problem


@pytest.mark.parametrize("shape", [(1, 1, 3, 2), (5, 3, 4, 6), (7, 2, 8, 3), (2, 5, 3, 3)])
def test_generated_matches_hand_written_backward(lstm, reference, shape):
    params, xs, state0, dhs, dstateT = random_problem(lstm, *shape, seed=11)
    hs, stateT, cache = lstm.forward(params, xs, state0)
    grads, dxs, dstate0 = lstm.backward(params, cache, dhs, dstateT)
    ref_hs, ref_stateT, ref_cache = reference.forward(params, xs, state0)
    ref_grads, ref_dxs, ref_dstate0 = reference.backward(params, ref_cache, dhs, dstateT)
    np.testing.assert_allclose(hs, ref_hs, rtol=1e-10, atol=1e-12, equal_nan=False)
    for s in lstm.STATE:
        np.testing.assert_allclose(stateT[s], ref_stateT[s], rtol=1e-10, atol=1e-12, equal_nan=False)
        np.testing.assert_allclose(dstate0[s], ref_dstate0[s], rtol=1e-10, atol=1e-12, equal_nan=False)
    assert list(grads) == list(lstm.PARAMS)
    for name in lstm.PARAMS:
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-10, atol=1e-12, err_msg=name, equal_nan=False)
    np.testing.assert_allclose(dxs, ref_dxs, rtol=1e-10, atol=1e-12, equal_nan=False)


def test_default_state_and_final_gradient_are_zeros(lstm, reference):
    params, xs, _, dhs, _ = random_problem(lstm, 3, 2, 4, 3, seed=2)
    _, _, cache = lstm.forward(params, xs)
    grads, dxs, dstate0 = lstm.backward(params, cache, dhs)
    _, _, ref_cache = reference.forward(params, xs, None)
    ref_grads, ref_dxs, ref_dstate0 = reference.backward(params, ref_cache, dhs, None)
    for name in lstm.PARAMS:
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-10, atol=1e-12, equal_nan=False)
    np.testing.assert_allclose(dstate0["c"], ref_dstate0["c"], rtol=1e-10, atol=1e-12, equal_nan=False)
