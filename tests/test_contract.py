"""The generated module's public contract: names, shapes, dtypes, errors, imports."""
import ast

import numpy as np
import pytest

from conftest import GENERATED, random_problem


def test_params_state_and_shapes(lstm):
    assert list(lstm.PARAMS) == [f"{w}_{g}" for w in "WUb" for g in "figo"]
    assert lstm.PARAMS["W_f"] == ("H", "D") and lstm.PARAMS["U_o"] == ("H", "H")
    assert lstm.PARAMS["b_g"] == ("H",)
    assert lstm.STATE == ("h", "c")
    params = lstm.init_params(3, 2, seed=0)
    assert params["W_i"].shape == (2, 3) and params["U_i"].shape == (2, 2)
    assert params["b_i"].shape == (2,) and params["b_i"].dtype == np.float64
    np.testing.assert_array_equal(params["W_f"], lstm.init_params(3, 2, seed=0)["W_f"])


def test_float32_in_float32_out_and_close_to_float64(lstm):
    p64, xs, state0, dhs, dstateT = random_problem(lstm, 6, 4, 5, 7, seed=4)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    hs, stateT, cache = lstm.forward(p32, f32(xs), {k: f32(v) for k, v in state0.items()})
    grads, dxs, dstate0 = lstm.backward(p32, cache, f32(dhs), {k: f32(v) for k, v in dstateT.items()})
    assert hs.dtype == dxs.dtype == np.float32
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}
    assert {s.dtype for s in (*stateT.values(), *dstate0.values())} == {np.dtype(np.float32)}
    _, _, c64 = lstm.forward(p64, xs, state0)
    g64, dx64, _ = lstm.backward(p64, c64, dhs, dstateT)
    for name in grads:
        scale = np.abs(g64[name]).max()
        assert np.abs(grads[name] - g64[name]).max() <= 1e-4 * scale, name


def test_sigmoid_is_stable_for_huge_inputs(lstm):
    params = lstm.init_params(2, 2, seed=0)
    xs = np.full((2, 1, 2), 1e4)
    with np.errstate(all="raise"):
        hs, _, cache = lstm.forward(params, xs)
        lstm.backward(params, cache, np.ones_like(hs))
    assert np.all(np.isfinite(hs))


@pytest.mark.parametrize("call, message", [
    (lambda m, p: m.forward(p, np.zeros((2, 3))), r"xs has shape \(2, 3\), expected \(T, B, D\)"),
    (lambda m, p: m.forward(p, np.zeros((2, 1, 4))), r"expected \(T, B, D\) = \(2, 1, 3\)"),
    (lambda m, p: m.forward(dict(p, U_f=np.zeros((2, 3))), np.zeros((1, 1, 3))),
     r'params\["U_f"\] has shape \(2, 3\), expected \(H, H\) = \(2, 2\)'),
    (lambda m, p: m.forward({k: v for k, v in p.items() if k != "b_o"}, np.zeros((1, 1, 3))),
     "params is missing b_o"),
    (lambda m, p: m.forward(p, np.zeros((1, 2, 3)), {"h": np.zeros((2, 2)), "c": np.zeros((1, 2))}),
     r'state0\["c"\] has shape \(1, 2\), expected \(2, 2\)'),
    (lambda m, p: m.backward(p, m.forward(p, np.zeros((2, 1, 3)))[2], np.zeros((2, 1, 3))),
     r"dhs has shape \(2, 1, 3\), expected \(2, 1, 2\)"),    # a cache that forward did not return: was a KeyError 'xs' or a TypeError on None
    (lambda m, p: m.backward(p, {}, np.zeros((2, 1, 2))), "cache must be the third value forward"),
    (lambda m, p: m.backward(p, None, np.zeros((2, 1, 2))), "cache must be the third value forward"),
])
def test_wrong_shapes_raise_value_errors_naming_the_expected_shape(lstm, call, message):
    with pytest.raises(ValueError, match=message):
        call(lstm, lstm.init_params(3, 2))


def test_generated_module_imports_numpy_only_and_cites_labels():
    source = (GENERATED / "lstm.py").read_text()
    imports = [n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [alias.name for n in imports for alias in n.names] == ["numpy"]
    assert "GENERATED FILE -- do not edit" in source and "`lstm-derive build`" in source
    assert "# (B3)" in source and "# (P5)-(P8)" in source


def test_a_feed_forward_backward_refuses_a_cache_forward_did_not_return():
    from conftest import generated
    mlp = generated("mlp")
    params = mlp.init_params(3, 4, 2)
    for cache in ({}, None, (1, 2)):
        with pytest.raises(ValueError, match="cache must be the second value forward"):
            mlp.backward(params, cache, np.zeros((1, 2)))
