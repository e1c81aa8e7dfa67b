"""The generated modules own what `backward` reads and keep no hidden state.

Refilling the caller's inputs, scaling the parameters in place, dropping the cache object
and running other forwards between `forward` and `backward` never changes a gradient;
edge cases (B = 0, T = 0, complex input) and the explicit `Workspace` behave as documented.
"""
import gc

import numpy as np
import pytest

from conftest import ROOT, generated, load_file
from catalogue.cells import CELLS

RECURRENT = [name for name, entry in CELLS.items() if entry.cell.recurrent]
FEEDFORWARD = [name for name, entry in CELLS.items() if not entry.cell.recurrent]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def recurrent_modules():
    return [generated(name) for name in RECURRENT] + \
        [load_file(path, f"example_{path.stem}") for path in EXAMPLES]


def problem(module, T=4, B=3, D=5, H=6, seed=0, dtype=np.float64):
    params = module.init_params(*[{"D": D, "H": H, "P": 3}[s] for s in module.SIZES],
                                seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(T, B, D)).astype(dtype)
    hs, stateT, _ = module.forward(params, xs)
    state0 = {s: rng.normal(size=v.shape).astype(dtype) for s, v in stateT.items()}
    dhs = rng.normal(size=hs.shape).astype(dtype)
    dstateT = {s: rng.normal(size=v.shape).astype(dtype) for s, v in stateT.items()}
    return params, xs, state0, dhs, dstateT


def disturb(params, *arrays):
    """Refill the caller's buffers and scale the parameters in place."""
    for array in arrays:
        array[...] = 7.0
    for value in params.values():
        value *= 3.0


def results(grads, dxs, dstate0):
    return {**grads, "dxs": dxs, **{f"d{s}0": v for s, v in dstate0.items()}}


def assert_same(got, expected):
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


@pytest.mark.parametrize("module", recurrent_modules(), ids=lambda m: m.__name__)
@pytest.mark.parametrize("checkpoint", [None, 3])
def test_gradients_ignore_what_the_caller_does_after_forward(module, checkpoint):
    params, xs, state0, dhs, dstateT = problem(module)
    clean = module.forward(params, xs, state0, checkpoint=checkpoint)[2]
    expected = results(*module.backward(params, clean, dhs, dstateT))
    params, xs, state0 = ({k: v.copy() for k, v in params.items()}, xs.copy(),
                          {k: v.copy() for k, v in state0.items()})
    cache = module.forward(params, xs, state0, checkpoint=checkpoint)[2]
    kept = dict(cache)   # arrays taken out of the cache, the cache object itself dropped
    del cache
    gc.collect()
    disturb(params, xs, *state0.values())
    other = module.forward(params, xs, state0, checkpoint=checkpoint)[2]
    module.backward(params, other, dhs, dstateT)
    assert_same(results(*module.backward(params, kept, dhs, dstateT)), expected)


@pytest.mark.parametrize("name", FEEDFORWARD)
def test_feedforward_gradients_ignore_what_the_caller_does_after_forward(name):
    module = generated(name)
    params = module.init_params(*[{"D": 5, "H": 6, "K": 4}.get(s, 4) for s in module.SIZES], seed=0)
    x = np.random.default_rng(0).normal(size=(3, 5))
    y, cache = module.forward(params, x)
    dy = np.random.default_rng(1).normal(size=y.shape)
    expected = results(*module.backward(params, cache, dy), {})
    params, x = {k: v.copy() for k, v in params.items()}, x.copy()
    kept = dict(module.forward(params, x)[1])
    gc.collect()
    disturb(params, x)
    module.forward(params, x)
    assert_same(results(*module.backward(params, kept, dy), {}), expected)


@pytest.mark.parametrize("module", recurrent_modules(), ids=lambda m: m.__name__)
def test_an_empty_batch_gives_empty_outputs_and_zero_gradients(module):
    params, xs, state0, dhs, dstateT = problem(module, B=0, dtype=np.float32)
    hs, stateT, cache = module.forward(params, xs)
    grads, dxs, dstate0 = module.backward(params, cache, dhs, dstateT)
    assert hs.shape == dhs.shape and dxs.shape == xs.shape and hs.dtype == np.float32
    assert all(stateT[s].shape == dstate0[s].shape == state0[s].shape for s in module.STATE)
    for name, value in grads.items():
        assert value.shape == params[name].shape and value.dtype == np.float32
        assert not value.any(), name


@pytest.mark.parametrize("module", recurrent_modules(), ids=lambda m: m.__name__)
def test_no_steps_returns_fresh_state_gradients(module):
    params, xs, state0, dhs, dstateT = problem(module, T=0)
    hs, stateT, cache = module.forward(params, xs, state0)
    grads, dxs, dstate0 = module.backward(params, cache, dhs, dstateT)
    assert hs.shape[0] == dxs.shape[0] == 0
    for s in module.STATE:
        assert dstate0[s] is not dstateT[s] and stateT[s] is not state0[s]
        np.testing.assert_array_equal(dstate0[s], dstateT[s])


def test_complex_input_is_refused_in_one_line(lstm):
    params = lstm.init_params(3, 2)
    with pytest.raises(ValueError, match=r"^xs is complex \(complex128\); the cell takes real arrays$"):
        lstm.forward(params, np.zeros((2, 1, 3), complex))
    with pytest.raises(ValueError, match=r'^params\["U_f"\] is complex'):
        lstm.forward(dict(params, U_f=params["U_f"] + 0j), np.zeros((2, 1, 3)))


def test_a_workspace_gives_the_same_gradients_and_guards_its_cache(lstm):
    params, xs, state0, dhs, dstateT = problem(lstm)
    ws = lstm.Workspace()
    for checkpoint in (None, 2, None):
        plain = lstm.forward(params, xs, state0, checkpoint=checkpoint)[2]
        expected = results(*lstm.backward(params, plain, dhs, dstateT))
        cache = lstm.forward(params, xs, state0, checkpoint=checkpoint, workspace=ws)[2]
        assert_same(results(*lstm.backward(params, cache, dhs, dstateT)), expected)
    lstm.forward(params, xs, workspace=ws)
    with pytest.raises(ValueError, match="workspace was used by a later forward"):
        lstm.backward(params, cache, dhs, dstateT)
