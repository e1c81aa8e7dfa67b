"""Generated gradients against PyTorch autograd, for the cells PyTorch ships (float64).

PyTorch is an optional test extra; CI installs it, and there (CI=true) a missing torch is
a failure rather than a skip.
"""
import os

import numpy as np
import pytest

from conftest import generated
from catalogue.cells import CELLS

if os.environ.get("CI") == "true":
    import torch
else:
    torch = pytest.importorskip("torch")

TORCH_CELLS = [name for name, entry in CELLS.items() if entry.torch is not None]
SIZES = {"D": 3, "H": 4, "P": 2}


def torch_module(module, sizes):
    """The torch.nn module of this cell, in float64, built from the layout the module declares."""
    kinds = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}
    options = dict(input_size=sizes["D"], hidden_size=sizes["H"])
    if "P" in module.SIZES:
        options["proj_size"] = sizes["P"]
    return kinds[module.TORCH_MODULE](**options).double()


@pytest.mark.parametrize("name", TORCH_CELLS)
def test_parameters_round_trip(name):
    module = generated(name)
    params = module.init_params(*(SIZES[s] for s in module.SIZES), seed=3)
    back = module.from_torch(module.to_torch(params))
    assert list(back) == list(module.PARAMS)
    for key in params:
        np.testing.assert_array_equal(back[key], params[key])
    net = torch_module(module, SIZES)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in module.to_torch(params).items()})
    # PyTorch's own random state dict converts too, and gives the same outputs
    net2 = torch_module(module, SIZES)
    converted = module.from_torch(net2.state_dict())
    xs = np.random.default_rng(0).normal(size=(4, 2, SIZES["D"]))
    out, _ = net2(torch.from_numpy(xs))
    hs, _, _ = module.forward(converted, xs)
    np.testing.assert_allclose(hs, out.detach().numpy(), rtol=1e-12, atol=1e-14, equal_nan=False)


def test_from_torch_names_a_missing_key():
    module = generated("lstm")
    with pytest.raises(ValueError, match="weight_hh_l0"):
        module.from_torch({"weight_ih_l0": np.zeros((8, 3))})


@pytest.mark.parametrize("shape", [(5, 3), (1, 1), (3, 1)], ids=lambda s: f"T{s[0]}B{s[1]}")
@pytest.mark.parametrize("name", TORCH_CELLS)
def test_gradients_match_torch_autograd(name, shape):
    T, B = shape
    module = generated(name)
    sizes = SIZES
    params = module.init_params(*(sizes[s] for s in module.SIZES), seed=1)
    params = {k: 2 * v for k, v in params.items()}
    rng = np.random.default_rng(T * 10 + B)
    xs = rng.normal(size=(T, B, sizes["D"]))
    state0 = {s: rng.normal(size=(B, sizes[n])) for s, n in module.STATE_SIZES.items()}
    out_size = sizes[module.STATE_SIZES[module.STATE[0]]]
    dhs = rng.normal(size=(T, B, out_size))
    dstateT = {s: rng.normal(size=(B, sizes[n])) for s, n in module.STATE_SIZES.items()}

    hs, stateT, cache = module.forward(params, xs, state0)
    grads, dxs, dstate0 = module.backward(params, cache, dhs, dstateT)

    net = torch_module(module, sizes)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in module.to_torch(params).items()})
    x_t = torch.from_numpy(xs).requires_grad_()
    s0 = {s: torch.from_numpy(v)[None].requires_grad_() for s, v in state0.items()}
    initial = (s0["h"], s0["c"]) if "c" in s0 else s0["h"]
    out, final = net(x_t, initial)
    final = dict(zip(module.STATE, final if isinstance(final, tuple) else (final,)))
    loss = (out * torch.from_numpy(dhs)).sum() + sum(
        (final[s][0] * torch.from_numpy(dstateT[s])).sum() for s in module.STATE)
    loss.backward()

    np.testing.assert_allclose(hs, out.detach().numpy(), rtol=1e-10, atol=1e-12, equal_nan=False)
    np.testing.assert_allclose(dxs, x_t.grad.numpy(), rtol=1e-10, atol=1e-12, equal_nan=False)
    for s in module.STATE:
        np.testing.assert_allclose(dstate0[s], s0[s].grad[0].numpy(), rtol=1e-10, atol=1e-12, equal_nan=False)
    torch_grads = dict(net.named_parameters())
    for key, names in module.TORCH_KEYS.items():
        blocks = np.split(torch_grads[key].grad.numpy(), len(names))
        for param, block in zip(names, blocks):   # both PyTorch biases get our bias gradient
            np.testing.assert_allclose(grads[param], block, rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name}: {param} in {key}", equal_nan=False)
